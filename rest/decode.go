package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/store"
)

// maxReportedFields caps the errors list, so a body of a million unknown
// keys cannot make an equally large response.
const maxReportedFields = 20

// decodeMode tells decodeBook which representation to expect.
type decodeMode int

const (
	// modeCreate: POST sends the whole book; title and author are
	// required, price and stock default to 0, isbn to none. The read-only
	// fields are refused: the server assigns them.
	modeCreate decodeMode = iota
	// modeReplace: PUT, like modeCreate, except that the read-only fields
	// may be sent back as they were read (GET-modify-PUT); they are checked
	// against the stored book by checkStored.
	modeReplace
	// modePatch: PATCH is a JSON merge patch (RFC 7396); absent fields stay,
	// null removes (only isbn can be removed). Read-only fields as for
	// modeReplace.
	modePatch
)

// bookInput holds the writable fields of a request, already validated and
// normalized, and the read-only fields it carried. The has* flags keep
// "absent" apart from "zero".
type bookInput struct {
	title, author       string
	isbn                string // "" with hasISBN: none (null)
	priceCents, stock   int64
	costCents           int64
	supplier            string
	hasTitle, hasAuthor bool
	hasISBN, hasPrice   bool
	hasStock            bool
	hasCost, hasSupp    bool
	readOnly            readOnlyInput
}

// readOnlyInput holds the read-only fields a PUT or PATCH body carried,
// which must equal the stored ones.
type readOnlyInput struct {
	id, version          int64
	createdAt, updatedAt time.Time
	hasID, hasVersion    bool
	hasCreated           bool
	hasUpdated           bool
}

// apply writes the input onto b: every field for modeCreate and
// modeReplace, only the present ones for modePatch.
func (in bookInput) apply(b *store.Book, mode decodeMode) {
	if mode != modePatch {
		*b = store.Book{ID: b.ID, Version: b.Version, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt}
	}
	if in.hasTitle {
		b.Title = in.title
	}
	if in.hasAuthor {
		b.Author = in.author
	}
	if in.hasISBN {
		b.ISBN = in.isbn
	}
	if in.hasPrice {
		b.PriceCents = in.priceCents
	}
	if in.hasStock {
		b.Stock = in.stock
	}
	if in.hasCost {
		b.CostCents = in.costCents
	}
	if in.hasSupp {
		b.Supplier = in.supplier
	}
}

// readBody reads the whole (already size-capped) body, mapping the cap to
// 413.
func readBody(c *gin.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		// The client stopped sending mid-body; not a server fault.
		return nil, &apiError{kind: kindMalformed, detail: "the request body could not be read to its end", cause: err}
	}
	return body, nil
}

// member is one key of a JSON object, in body order.
type member struct {
	key string
	raw json.RawMessage
}

// decodeObject parses body as exactly one JSON object and returns its
// members in order. It refuses empty bodies, non-objects, duplicate keys,
// invalid UTF-8 and trailing data, each with its own message.
func decodeObject(body []byte) ([]member, error) {
	if !utf8.Valid(body) {
		return nil, newError(kindMalformed, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err == io.EOF {
		return nil, newError(kindMalformed, "the request body is empty; send a JSON object")
	}
	if err != nil {
		return nil, malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, newError(kindMalformed, "the request body must be a JSON object")
	}
	var members []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		key := tok.(string) // inside an object the decoder only yields string keys
		if seen[key] {
			return nil, &apiError{kind: kindMalformed,
				detail: fmt.Sprintf("field %q appears more than once", key),
				fields: []fieldError{{Field: key, Message: "appears more than once"}}}
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(err)
		}
		members = append(members, member{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, newError(kindMalformed, "unexpected data after the JSON object")
	}
	return members, nil
}

func malformed(err error) *apiError {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return newErrorf(kindMalformed, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return newError(kindMalformed, "malformed JSON: the body ends too early")
	default:
		return newError(kindMalformed, "malformed JSON")
	}
}

// jsonKind names the JSON type of a raw value for error messages.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case 'n':
		return "null"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case '{':
		return "object"
	case '[':
		return "array"
	default:
		return "number"
	}
}

// fieldErrors collects per-field problems of two severities: structural ones
// (400: unknown, read-only, wrong JSON type) and value ones (422).
type fieldErrors struct{ bad, invalid []fieldError }

func (fe *fieldErrors) badf(field, format string, args ...any) {
	fe.bad = append(fe.bad, fieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (fe *fieldErrors) invalidf(field, format string, args ...any) {
	fe.invalid = append(fe.invalid, fieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (fe *fieldErrors) err() error {
	switch {
	case len(fe.bad) > 0:
		return &apiError{kind: kindInvalidField, detail: summarize(fe.bad), fields: capFields(fe.bad)}
	case len(fe.invalid) > 0:
		return &apiError{kind: kindValidation, detail: summarize(fe.invalid), fields: capFields(fe.invalid)}
	}
	return nil
}

func summarize(fields []fieldError) string {
	if len(fields) == 1 {
		return fmt.Sprintf("field %q %s", fields[0].Field, fields[0].Message)
	}
	return fmt.Sprintf("%d fields are wrong; see errors", len(fields))
}

func capFields(fields []fieldError) []fieldError {
	if len(fields) > maxReportedFields {
		return fields[:maxReportedFields]
	}
	return fields
}

// checkStored compares the read-only fields of a PUT or PATCH body with the
// stored book cur. It runs inside the store's Update transaction, on the row
// that is about to change, so no concurrent write can slip between the check
// and the write.
//
// A differing version means the client edited a stale copy: 412, like a
// stale If-Match, whatever else differs. A differing id, created_at or
// updated_at is 422 naming the field: the client tried to change what it
// cannot. Times compare as instants, so any RFC 3339 rendering of the stored
// time matches.
func (ro readOnlyInput) checkStored(cur store.Book) error {
	if ro.hasVersion && ro.version != cur.Version {
		return &apiError{kind: kindPrecondition,
			detail: fmt.Sprintf("the body carries version %d but the book is now at version %d: it changed after this copy was read; fetch it again and reapply the change",
				ro.version, cur.Version),
			fields: []fieldError{{Field: "version", Message: fmt.Sprintf("is %d, not the current version %d", ro.version, cur.Version)}}}
	}
	var fe fieldErrors
	if ro.hasID && ro.id != cur.ID {
		fe.invalidf("id", "is read-only and must equal the id in the path, %d", cur.ID)
	}
	if ro.hasCreated && !ro.createdAt.Equal(cur.CreatedAt) {
		fe.invalidf("created_at", "is read-only and must equal the stored value %s", formatTime(cur.CreatedAt))
	}
	if ro.hasUpdated && !ro.updatedAt.Equal(cur.UpdatedAt) {
		fe.invalidf("updated_at", "is read-only and must equal the stored value %s (if the copy is stale, fetch the book again)",
			formatTime(cur.UpdatedAt))
	}
	return fe.err()
}

// decodeBook decodes and validates a book body by hand, so that every refusal
// names its field. The text and ISBN rules are the store's (store.NormalizeText,
// store.NormalizeISBN); this function maps them to field errors.
//
// Read-only fields (id, version, created_at, updated_at) are refused on
// create, where the server assigns them. On PUT and PATCH they are accepted
// as read, so the common GET-modify-PUT works: decodeBook checks their type
// and form here, and checkStored compares them with the stored book.
func decodeBook(body []byte, mode decodeMode) (bookInput, error) {
	members, err := decodeObject(body)
	if err != nil {
		return bookInput{}, err
	}
	var in bookInput
	var fe fieldErrors
	for _, m := range members {
		jt := jsonKind(m.raw)
		switch m.key {
		case "id", "version", "created_at", "updated_at":
			if mode == modeCreate {
				fe.badf(m.key, "is read-only; the server assigns it")
				continue
			}
			decodeReadOnly(&fe, &in.readOnly, m, jt)
		case "title", "author":
			s, ok := decodeText(&fe, m, jt, mode)
			if m.key == "title" {
				in.title, in.hasTitle = s, ok
			} else {
				in.author, in.hasAuthor = s, ok
			}
		case "isbn":
			switch jt {
			case "null":
				in.isbn, in.hasISBN = "", true
			case "string":
				var s string
				_ = json.Unmarshal(m.raw, &s) // a valid JSON string always decodes
				if isbn, err := store.NormalizeISBN(s); err == nil {
					in.isbn, in.hasISBN = isbn, true
				} else {
					fe.invalidf(m.key, "%s, or null", err)
				}
			default:
				fe.badf(m.key, "must be a string or null, not %s", an(jt))
			}
		case "price":
			in.priceCents, in.hasPrice = decodeNumber(&fe, m, jt, 2)
		case "stock":
			in.stock, in.hasStock = decodeNumber(&fe, m, jt, 0)
		case "cost_price":
			in.costCents, in.hasCost = decodeNumber(&fe, m, jt, 2)
		case "supplier":
			// Optional text: null or "" means none.
			if jt == "null" {
				in.supplier, in.hasSupp = "", true
				continue
			}
			if jt == "string" && string(m.raw) == `""` {
				in.supplier, in.hasSupp = "", true
				continue
			}
			in.supplier, in.hasSupp = decodeText(&fe, m, jt, mode)
		default:
			fe.badf(m.key, "is not a known field")
		}
	}
	if mode != modePatch {
		for _, f := range []struct {
			name string
			has  bool
		}{{"title", in.hasTitle}, {"author", in.hasAuthor}} {
			if !f.has && !hasField(members, f.name) {
				fe.invalidf(f.name, "is required")
			}
		}
	}
	return in, fe.err()
}

func hasField(members []member, key string) bool {
	for _, m := range members {
		if m.key == key {
			return true
		}
	}
	return false
}

// decodeText validates title and author: a string that follows
// store.NormalizeText's rules (no control characters, not empty once
// trimmed and with format characters ignored, at most store.MaxTextLen
// characters). It keeps the normalized value.
func decodeText(fe *fieldErrors, m member, jt string, mode decodeMode) (string, bool) {
	switch jt {
	case "string":
	case "null":
		if mode == modePatch {
			fe.invalidf(m.key, "must not be null; it cannot be removed")
		} else {
			fe.invalidf(m.key, "is required")
		}
		return "", false
	default:
		fe.badf(m.key, "must be a string, not %s", an(jt))
		return "", false
	}
	var s string
	_ = json.Unmarshal(m.raw, &s) // a valid JSON string always decodes
	s, err := store.NormalizeText(s)
	if err != nil {
		fe.invalidf(m.key, "%s", err)
		return "", false
	}
	return s, true
}

// readOnlyType reports whether a read-only field has the JSON type want,
// recording the refusal otherwise: null is a 422 (it cannot be the stored
// value), another type a 400.
func readOnlyType(fe *fieldErrors, key, jt, want string) bool {
	switch jt {
	case want:
		return true
	case "null":
		fe.invalidf(key, "must not be null; it is read-only")
	default:
		fe.badf(key, "must be a %s, not %s", want, an(jt))
	}
	return false
}

// decodeReadOnly checks the type and form of a read-only field sent with PUT
// or PATCH and records its value for checkStored. The wrong JSON type is a
// 400 like any other field's; a value that cannot be the stored one (null, a
// fraction, a time that is not RFC 3339) is a 422.
func decodeReadOnly(fe *fieldErrors, ro *readOnlyInput, m member, jt string) {
	switch m.key {
	case "id", "version":
		if !readOnlyType(fe, m.key, jt, "number") {
			return
		}
		v, err := parseDecimal(string(bytes.TrimSpace(m.raw)), 0, math.MaxInt64)
		if err != nil || v < 1 {
			fe.invalidf(m.key, "is read-only and must be the stored value, a positive whole number")
			return
		}
		if m.key == "id" {
			ro.id, ro.hasID = v, true
		} else {
			ro.version, ro.hasVersion = v, true
		}
	case "created_at", "updated_at":
		if !readOnlyType(fe, m.key, jt, "string") {
			return
		}
		var s string
		_ = json.Unmarshal(m.raw, &s) // a valid JSON string always decodes
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			fe.invalidf(m.key, "is read-only and must be the stored value, an RFC 3339 time such as 2025-01-31T12:00:00Z")
			return
		}
		if m.key == "created_at" {
			ro.createdAt, ro.hasCreated = t, true
		} else {
			ro.updatedAt, ro.hasUpdated = t, true
		}
	}
}

// decodeNumber validates price (scale 2) and stock (scale 0): a JSON number,
// not negative, exact at that scale, at most maxSafeInteger units.
func decodeNumber(fe *fieldErrors, m member, jt string, scale int) (int64, bool) {
	switch jt {
	case "number":
	case "null":
		fe.invalidf(m.key, "must not be null")
		return 0, false
	default:
		fe.badf(m.key, "must be a number, not %s", an(jt))
		return 0, false
	}
	v, err := parseDecimal(string(bytes.TrimSpace(m.raw)), scale, maxSafeInteger)
	switch {
	case errors.Is(err, errTooPrecise) && scale == 0:
		fe.invalidf(m.key, "must be a whole number")
	case errors.Is(err, errTooPrecise):
		fe.invalidf(m.key, "must have at most %d decimal places", scale)
	case errors.Is(err, errTooLarge):
		fe.invalidf(m.key, "must be at most %s", maxText(scale))
	case err != nil:
		fe.badf(m.key, "must be a number") // unreachable: the decoder checked the syntax
	case v < 0:
		fe.invalidf(m.key, "must not be negative")
	default:
		return v, true
	}
	return 0, false
}

func maxText(scale int) string {
	if scale == 2 {
		return string(appendCents(nil, maxSafeInteger))
	}
	return strconv.FormatInt(maxSafeInteger, 10)
}

func an(jt string) string {
	switch jt {
	case "null", "nothing":
		return jt
	case "array", "object":
		return "an " + jt
	}
	return "a " + jt
}
