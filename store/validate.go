package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rules a Book must follow live here, next to the entity, so that every
// writer (the REST decoder, the store's own Create and Update, a future
// importer) applies the same ones. Callers that want to report each field as
// it is decoded use NormalizeText and NormalizeISBN; Book.Normalize applies
// all of them at once.

// MaxTextLen is the most characters (Unicode code points) a title, an
// author or a supplier may have after trimming; the columns are
// VARCHAR(255).
const MaxTextLen = 255

// ErrInvalidBook: a Book breaks one of the rules of Book.Normalize. The error
// is a *ValidationError, which names the fields. It matches ErrInvalid too.
var ErrInvalidBook error = &kindError{msg: "invalid book", kind: ErrInvalid}

// ErrInvalidUser: a user breaks one of the rules of user_validate.go. The
// error is a *ValidationError with Entity "user", which names the fields
// (the Go names of NewUser). It matches ErrInvalid too.
var ErrInvalidUser error = &kindError{msg: "invalid user", kind: ErrInvalid}

// FieldError is one rule a field of an entity breaks.
type FieldError struct {
	// Field is the Go name of the entity's field: for a Book "Title",
	// "Author", "ISBN", "PriceCents", "Stock", "CostCents" or "Supplier";
	// for a user see NewUser.
	Field string
	// Message says what is wrong in a form that reads after the field's
	// name ("must not be empty").
	Message string
}

// ValidationError lists every field of an entity that breaks a rule. It
// matches ErrInvalid with errors.Is, and ErrInvalidBook or ErrInvalidUser
// according to Entity.
type ValidationError struct {
	// Entity is "book" or "user".
	Entity string
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return "invalid " + e.Entity + ": " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalidBook) (or ErrInvalidUser, by Entity)
// and errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error {
	switch e.Entity {
	case "book":
		return ErrInvalidBook
	case "user":
		return ErrInvalidUser
	}
	return ErrInvalid
}

// NormalizeText applies the rules of a title or an author and returns the
// value to store:
//
//   - it must be valid UTF-8;
//   - it must not contain control characters (Unicode category Cc: NUL,
//     tab, newline, DEL, the C1 range) nor the line and paragraph separators
//     U+2028 and U+2029, anywhere: a title is one line of text, and these
//     characters only hide content or break the lines of logs and CSV
//     exports;
//   - leading and trailing white space is removed;
//   - what remains must not be empty once format characters (category Cf:
//     zero-width space U+200B, joiners U+200C/U+200D, word joiner U+2060,
//     byte order mark U+FEFF, bidi marks, ...) are ignored, because a value
//     made only of invisible characters looks empty to every reader; format
//     characters between visible ones are kept (joiners shape emoji and
//     Indic scripts);
//   - its first visible character must not be a combining mark (category
//     M), which has nothing to combine with;
//   - it must have at most MaxTextLen characters.
//
// The error's text is a message to show after the field's name.
func NormalizeText(s string) (string, error) {
	return normalizeText(s, MaxTextLen, false)
}

// normalizeText is NormalizeText with max characters; when optional, a
// value that is empty after trimming is accepted as "" (control characters
// are still refused: they are never white space to trim).
func normalizeText(s string, max int, optional bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("must be valid UTF-8")
	}
	for i, r := range s {
		if unicode.Is(unicode.Cc, r) || r == '\u2028' || r == '\u2029' {
			return "", fmt.Errorf("must not contain control characters or line breaks (found U+%04X at character %d)",
				r, utf8.RuneCountInString(s[:i])+1)
		}
	}
	s = strings.TrimSpace(s)
	var first rune = -1
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) {
			first = r
			break
		}
	}
	switch n := utf8.RuneCountInString(s); {
	case s == "" && optional:
		return "", nil
	case first < 0 && optional:
		return "", errors.New("must be empty or contain visible characters")
	case first < 0:
		return "", errors.New("must not be empty")
	case unicode.Is(unicode.M, first):
		return "", fmt.Errorf("must not begin with a combining mark (U+%04X)", first)
	case n > max:
		return "", fmt.Errorf("must be at most %d characters, got %d", max, n)
	}
	return s, nil
}

// NormalizeISBN checks an ISBN and returns its canonical form, the 13 digits
// of the ISBN-13. It accepts an ISBN-13 (prefix 978 or 979) or an ISBN-10
// (whose last character may be X), each with a valid check digit, with any
// hyphens and spaces. An ISBN-10 becomes the ISBN-13 of the same book: 978,
// its first nine digits and a recomputed check digit. Storing one form is
// what makes the ISBN-10 and the ISBN-13 of one book collide on the unique
// index instead of making two books.
func NormalizeISBN(s string) (string, error) {
	var buf [13]byte
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '-' || ch == ' ':
			continue
		case ch >= '0' && ch <= '9' || ch == 'X' || ch == 'x':
			if n == len(buf) {
				return "", errBadISBN
			}
			if ch == 'x' {
				ch = 'X'
			}
			buf[n] = ch
			n++
		default:
			return "", errBadISBN
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
					return "", errBadISBN
				}
				v = 10
			}
			sum += (10 - i) * v
		}
		if sum%11 != 0 {
			return "", errBadISBN
		}
		return isbn13("978" + string(d[:9])), nil
	case 13:
		if string(d[:3]) != "978" && string(d[:3]) != "979" {
			return "", errBadISBN
		}
		for _, ch := range d {
			if ch == 'X' {
				return "", errBadISBN
			}
		}
		if isbn13(string(d[:12])) != string(d) {
			return "", errBadISBN
		}
		return string(d), nil
	}
	return "", errBadISBN
}

var errBadISBN = errors.New("must be an ISBN-10 or ISBN-13 with a valid check digit (hyphens and spaces allowed)")

// isbn13 appends the ISBN-13 check digit to twelve digits.
func isbn13(digits12 string) string {
	sum := 0
	for i := 0; i < 12; i++ {
		w := 1
		if i%2 == 1 {
			w = 3
		}
		sum += w * int(digits12[i]-'0')
	}
	return digits12 + string(rune('0'+(10-sum%10)%10))
}

// Normalize applies every rule of a Book's writable fields and returns the
// book as it is to be stored: title and author as NormalizeText makes them,
// the ISBN as NormalizeISBN makes it ("" stays none), the supplier like
// the author but possibly empty, price, cost and stock not negative. It fails with a *ValidationError naming every field that breaks
// a rule. ID, Version and the timestamps are not looked at: the store
// assigns them.
func (b Book) Normalize() (Book, error) {
	var fields []FieldError
	b, fields = b.normalize(func(string) bool { return true })
	if len(fields) > 0 {
		return b, &ValidationError{Entity: "book", Fields: fields}
	}
	return b, nil
}

// normalize applies the rules to the fields check selects and returns the
// broken ones.
func (b Book) normalize(check func(field string) bool) (Book, []FieldError) {
	var fields []FieldError
	fail := func(field string, err error) { fields = append(fields, FieldError{Field: field, Message: err.Error()}) }
	var err error
	if check("Title") {
		if b.Title, err = NormalizeText(b.Title); err != nil {
			fail("Title", err)
		}
	}
	if check("Author") {
		if b.Author, err = NormalizeText(b.Author); err != nil {
			fail("Author", err)
		}
	}
	if check("ISBN") && b.ISBN != "" {
		if b.ISBN, err = NormalizeISBN(b.ISBN); err != nil {
			fail("ISBN", err)
		}
	}
	if check("PriceCents") && b.PriceCents < 0 {
		fail("PriceCents", errors.New("must not be negative"))
	}
	if check("Stock") && b.Stock < 0 {
		fail("Stock", errors.New("must not be negative"))
	}
	if check("CostCents") && b.CostCents < 0 {
		fail("CostCents", errors.New("must not be negative"))
	}
	if check("Supplier") {
		if b.Supplier, err = normalizeText(b.Supplier, MaxTextLen, true); err != nil {
			fail("Supplier", err)
		}
	}
	return b, fields
}

// normalizeChanges is Normalize for an update: only the fields that differ
// from cur are checked, so a row written before a rule existed (a title
// with a tab, a 10-digit ISBN the migration could not convert) can still
// have its stock changed; it must follow the rules once those fields are
// rewritten.
func (b Book) normalizeChanges(cur Book) (Book, error) {
	changed := map[string]bool{
		"Title":      b.Title != cur.Title,
		"Author":     b.Author != cur.Author,
		"ISBN":       b.ISBN != cur.ISBN,
		"PriceCents": b.PriceCents != cur.PriceCents,
		"Stock":      b.Stock != cur.Stock,
		"CostCents":  b.CostCents != cur.CostCents,
		"Supplier":   b.Supplier != cur.Supplier,
	}
	b, fields := b.normalize(func(f string) bool { return changed[f] })
	if len(fields) > 0 {
		return b, &ValidationError{Entity: "book", Fields: fields}
	}
	return b, nil
}
