package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bookhub/bookhub/store"
)

// bookJSON is a book as clients see it. It is separate from store.Book so the
// wire format changes only on purpose; toBookJSON is the one converter.
type bookJSON struct {
	ID     int64  `json:"id"`
	Title  string `json:"title"`
	Author string `json:"author"`
	// ISBN is null when the book has none.
	ISBN      *string `json:"isbn"`
	Price     cents   `json:"price"`
	Stock     int64   `json:"stock"`
	Version   int64   `json:"version"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	// CostPrice and Supplier are staff-only: present for editors and
	// admins, absent for everybody else (see toBookJSON).
	CostPrice *cents  `json:"cost_price,omitempty"`
	Supplier  *string `json:"supplier,omitempty"`
}

// listJSON is the body of GET /api/v1/books.
type listJSON struct {
	Books      []bookJSON `json:"books"`
	NextCursor string     `json:"next_cursor,omitempty"`
	// Position is where the "books" channel stood when the page was read:
	// the page reflects every event up to it and none after.
	Position positionJSON `json:"position"`
}

// positionJSON is a place in a channel's event stream.
type positionJSON struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
	Epoch   string `json:"epoch"`
}

// toBookJSON converts a book; staff adds the staff-only fields.
func toBookJSON(b store.Book, staff bool) bookJSON {
	out := bookJSON{
		ID:        b.ID,
		Title:     b.Title,
		Author:    b.Author,
		Price:     cents(b.PriceCents),
		Stock:     b.Stock,
		Version:   b.Version,
		CreatedAt: formatTime(b.CreatedAt),
		UpdatedAt: formatTime(b.UpdatedAt),
	}
	if b.ISBN != "" {
		isbn := b.ISBN
		out.ISBN = &isbn
	}
	if staff {
		cost, supplier := cents(b.CostCents), b.Supplier
		out.CostPrice, out.Supplier = &cost, &supplier
	}
	return out
}

// EncodeBook returns the book's wire JSON as staff see it over REST. The
// relay renders events with it too, so WebSocket subscribers see exactly
// what REST returns; PublicBook derives what everybody else sees.
func EncodeBook(b store.Book) ([]byte, error) { return encodeBook(b, true) }

// StaffFields are the JSON members of a book only editors and admins see.
var StaffFields = []string{"cost_price", "supplier"}

// PublicBook strips the staff-only fields from a book's wire JSON (as
// EncodeBook made it), for viewers' WebSocket frames.
func PublicBook(staffJSON []byte) ([]byte, error) {
	var in bookJSON
	if err := json.Unmarshal(staffJSON, &in); err != nil {
		return nil, fmt.Errorf("decode book: %w", err)
	}
	in.CostPrice, in.Supplier = nil, nil
	return json.Marshal(in)
}

func encodeBook(b store.Book, staff bool) ([]byte, error) {
	body, err := json.Marshal(toBookJSON(b, staff))
	if err != nil {
		return nil, fmt.Errorf("encode book %d: %w", b.ID, err)
	}
	return body, nil
}

// formatTime renders RFC 3339 in UTC, keeping sub-second precision when the
// database has it.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// cents is an amount of money in hundredths. It renders as a JSON number with
// exactly two decimals (12.50), computed from the integer, never via float64.
type cents int64

// MarshalJSON implements json.Marshaler.
func (c cents) MarshalJSON() ([]byte, error) { return appendCents(nil, int64(c)), nil }

// UnmarshalJSON reads what MarshalJSON wrote (PublicBook re-reads books).
func (c *cents) UnmarshalJSON(b []byte) error {
	v, err := parseDecimal(string(b), 2, math.MaxInt64)
	if err != nil {
		return fmt.Errorf("amount %s: %w", b, err)
	}
	*c = cents(v)
	return nil
}

func appendCents(dst []byte, v int64) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = uint64(-v)
	}
	dst = strconv.AppendUint(dst, u/100, 10)
	frac := u % 100
	return append(dst, '.', byte('0'+frac/10), byte('0'+frac%10))
}

// maxSafeInteger is the largest integer a JavaScript client holds exactly.
// Prices (in cents) and stock are capped at it so browser dashboards and k6
// scripts never see a rounded value.
const maxSafeInteger = 1<<53 - 1

// Errors of parseDecimal; callers turn them into field messages.
var (
	errNumberSyntax = errors.New("not a decimal number")
	errTooPrecise   = errors.New("too many decimal places")
	errTooLarge     = errors.New("too large")
)

// parseDecimal converts the text of a JSON number to an integer count of
// 10^-scale units (scale 2: cents), exactly: 12.5 with scale 2 is 1250, and
// 1.005 is errTooPrecise rather than a rounded 100 or 101. Exponents are
// honoured (1.25e1 is 12.5). Magnitudes above max are errTooLarge.
func parseDecimal(s string, scale int, max int64) (int64, error) {
	i := 0
	neg := i < len(s) && s[i] == '-'
	if neg {
		i++
	}
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[intStart:i]
	if intPart == "" || len(intPart) > 1 && intPart[0] == '0' {
		return 0, errNumberSyntax
	}
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[fracStart:i]
		if frac == "" {
			return 0, errNumberSyntax
		}
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expStart := i
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		digitsStart := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if digitsStart == i {
			return 0, errNumberSyntax
		}
		var err error
		exp, err = strconv.ParseInt(s[expStart:i], 10, 64)
		if err != nil {
			// Beyond int64: any non-zero mantissa is hopeless either way,
			// and a clamp keeps the arithmetic below from overflowing.
			exp = 1 << 62
			if s[expStart] == '-' {
				exp = -exp
			}
		}
	}
	if i != len(s) {
		return 0, errNumberSyntax
	}

	// value = digits × 10^shift in the wanted units.
	digits := strings.TrimLeft(intPart+frac, "0")
	shift := exp - int64(len(frac)) + int64(scale)
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		shift++
	}
	if digits == "" {
		return 0, nil
	}
	if shift < 0 {
		return 0, errTooPrecise
	}
	if int64(len(digits))+shift > 18 { // 10^18 < 2^63: no overflow below.
		return 0, errTooLarge
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, errTooLarge
	}
	for ; shift > 0; shift-- {
		v *= 10
	}
	if v > max {
		return 0, errTooLarge
	}
	if neg {
		v = -v
	}
	return v, nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
