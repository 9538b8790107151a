package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/store"
)

// Limits on book fields.
const (
	maxTextLen = 255 // characters (runes) of title and author, after trimming
	// maxReportedFields caps the errors list, so a body of a million unknown
	// keys cannot make an equally large response.
	maxReportedFields = 20
)

// decodeMode tells decodeBook which representation to expect.
type decodeMode int

const (
	// modeFull: POST and PUT send the whole book; title and author are
	// required, price and stock default to 0, isbn to none.
	modeFull decodeMode = iota
	// modePatch: PATCH is a JSON merge patch (RFC 7396); absent fields stay,
	// null removes (only isbn can be removed).
	modePatch
)

// bookInput holds the writable fields of a request, already validated and
// normalized. The has* flags keep "absent" apart from "zero".
type bookInput struct {
	title, author       string
	isbn                string // "" with hasISBN: none (null)
	priceCents, stock   int64
	hasTitle, hasAuthor bool
	hasISBN, hasPrice   bool
	hasStock            bool
}

// apply writes the input onto b: every field for modeFull, only the present
// ones for modePatch.
func (in bookInput) apply(b *store.Book, mode decodeMode) {
	if mode == modeFull {
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

// decodeBook decodes and validates a book body by hand, so that every refusal
// names its field. Read-only fields (id, version, created_at, updated_at) are
// refused even when equal to the stored values: the version belongs in
// If-Match, and silently ignoring a differing value would hide client bugs.
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
			if m.key == "version" {
				fe.badf(m.key, "is read-only; send the version in an If-Match header instead")
			} else {
				fe.badf(m.key, "is read-only")
			}
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
				if isbn, ok := normalizeISBN(s); ok {
					in.isbn, in.hasISBN = isbn, true
				} else {
					fe.invalidf(m.key, "must be an ISBN-10 or ISBN-13 with a valid check digit (hyphens and spaces allowed), or null")
				}
			default:
				fe.badf(m.key, "must be a string or null, not %s", an(jt))
			}
		case "price":
			in.priceCents, in.hasPrice = decodeNumber(&fe, m, jt, 2)
		case "stock":
			in.stock, in.hasStock = decodeNumber(&fe, m, jt, 0)
		default:
			fe.badf(m.key, "is not a known field")
		}
	}
	if mode == modeFull {
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

// decodeText validates title and author: a string, trimmed non-empty, at
// most maxTextLen characters. It stores the trimmed value.
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
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		fe.invalidf(m.key, "must not be empty")
		return "", false
	case n > maxTextLen:
		fe.invalidf(m.key, "must be at most %d characters, got %d", maxTextLen, n)
		return "", false
	}
	return s, true
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

// normalizeISBN strips hyphens and spaces, upper-cases a final x, and checks
// the length, the ISBN-13 prefix (978/979) and the check digit. It returns
// the normalized digits.
func normalizeISBN(s string) (string, bool) {
	var buf [13]byte
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '-' || ch == ' ':
			continue
		case isDigit(ch) || ch == 'X' || ch == 'x':
			if n == len(buf) {
				return "", false
			}
			if ch == 'x' {
				ch = 'X'
			}
			buf[n] = ch
			n++
		default:
			return "", false
		}
	}
	d := buf[:n]
	switch n {
	case 10:
		sum := 0
		for i, ch := range d {
			v := int(ch - '0')
			if ch == 'X' {
				if i != 9 {
					return "", false
				}
				v = 10
			}
			sum += (10 - i) * v
		}
		return string(d), sum%11 == 0
	case 13:
		if string(d[:3]) != "978" && string(d[:3]) != "979" {
			return "", false
		}
		sum := 0
		for i, ch := range d {
			if ch == 'X' {
				return "", false
			}
			w := 1
			if i%2 == 1 {
				w = 3
			}
			sum += w * int(ch-'0')
		}
		return string(d), sum%10 == 0
	}
	return "", false
}
