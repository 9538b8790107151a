package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
)

// keyKind is the Go type of a sort column's values, which decides how a
// cursor stores them.
type keyKind int

const (
	kindInt keyKind = iota
	kindString
	kindTime
)

// sortSpec is a parsed ListOptions.Sort.
type sortSpec struct {
	name   string // canonical form, as recorded in cursors: "price", "-title"
	column string
	kind   keyKind
	desc   bool
}

// sortColumns maps SortFields to columns. Every column has an index on
// (column, id), so each page is one index range scan.
var sortColumns = map[string]struct {
	column string
	kind   keyKind
}{
	"id":         {"id", kindInt},
	"title":      {"title", kindString},
	"author":     {"author", kindString},
	"price":      {"price_cents", kindInt},
	"created_at": {"created_at", kindTime},
	"updated_at": {"updated_at", kindTime},
}

func parseSort(raw string) (sortSpec, error) {
	if raw == "" {
		raw = "id"
	}
	field, desc := strings.CutPrefix(raw, "-")
	c, ok := sortColumns[field]
	if !ok {
		return sortSpec{}, fmt.Errorf("%w: unknown sort %q (want one of %s, optionally prefixed with -)",
			ErrInvalidQuery, raw, strings.Join(SortFields, ", "))
	}
	return sortSpec{name: raw, column: c.column, kind: c.kind, desc: desc}, nil
}

// key returns b's value in the sort column.
func (sp sortSpec) key(b Book) any {
	switch sp.column {
	case "title":
		return b.Title
	case "author":
		return b.Author
	case "price_cents":
		return b.PriceCents
	case "created_at":
		return b.CreatedAt.UTC().Format(time.RFC3339Nano)
	case "updated_at":
		return b.UpdatedAt.UTC().Format(time.RFC3339Nano)
	default:
		return b.ID
	}
}

// cursor is the position after the last row of a page. It records the sort
// it was made for because the same (value, id) pair means a different
// position under another order. It is opaque to clients (base64url JSON)
// but not secret: a forged one only selects a different position, and
// decodeCursor accepts only what encodeCursor could have written, so no
// forged value reaches the database.
type cursor struct {
	Sort string          `json:"s"`
	Key  json.RawMessage `json:"k"`
	ID   int64           `json:"i"`
}

// MaxCursorLen is the longest ListOptions.Cursor List accepts, in bytes;
// longer ones are ErrInvalidQuery before any decoding. It is above the
// longest cursor List issues: a sort key of MaxTextLen characters that all
// need a six-byte JSON escape (such as "<" or U+2028), the longest sort name
// and the largest id, base64-encoded (2,102 bytes).
const MaxCursorLen = 2200

// Years a cursor's time may name. MySQL's driver cannot send a time outside
// them (and no row was written then), so such a cursor is refused here
// rather than failing in the query.
const minCursorYear, maxCursorYear = 1, 9999

func encodeCursor(sp sortSpec, last Book) string {
	key, _ := json.Marshal(sp.key(last)) // strings and ints always marshal
	raw, _ := json.Marshal(cursor{Sort: sp.name, Key: key, ID: last.ID})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decodeCursor returns the cursor's sort key, typed for the query, and id.
// Anything encodeCursor could not have produced for this sort is
// ErrInvalidQuery: an oversized or malformed cursor, unknown or missing
// members, data after the JSON, another sort, an id below 1, a null key, an
// id key differing from the id, a negative price, a text key longer than
// MaxTextLen, a time outside years 1-9999.
func decodeCursor(sp sortSpec, s string) (any, int64, error) {
	if len(s) > MaxCursorLen {
		return nil, 0, fmt.Errorf("%w: cursor longer than %d bytes", ErrInvalidQuery, MaxCursorLen)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || len(c.Key) == 0 {
		return nil, 0, fmt.Errorf("%w: malformed cursor", ErrInvalidQuery)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, fmt.Errorf("%w: data after the cursor", ErrInvalidQuery)
	}
	if c.Sort != sp.name {
		return nil, 0, fmt.Errorf("%w: cursor was made for sort %q, not %q", ErrInvalidQuery, c.Sort, sp.name)
	}
	if c.ID < 1 {
		return nil, 0, fmt.Errorf("%w: cursor id %d is not positive", ErrInvalidQuery, c.ID)
	}
	if string(c.Key) == "null" {
		// json.Unmarshal would leave a zero value and report no error.
		return nil, 0, fmt.Errorf("%w: cursor key is null", ErrInvalidQuery)
	}
	var key any
	switch sp.kind {
	case kindInt:
		var v int64
		if err = json.Unmarshal(c.Key, &v); err == nil {
			switch {
			case sp.column == "id" && v != c.ID:
				err = fmt.Errorf("id key %d differs from id %d", v, c.ID)
			case v < 0:
				err = fmt.Errorf("negative key %d", v)
			}
		}
		key = v
	case kindString:
		var v string
		if err = json.Unmarshal(c.Key, &v); err == nil && utf8.RuneCountInString(v) > MaxTextLen {
			err = fmt.Errorf("key longer than %d characters", MaxTextLen)
		}
		key = v
	case kindTime:
		var v string
		if err = json.Unmarshal(c.Key, &v); err == nil {
			var t time.Time
			if t, err = time.Parse(time.RFC3339Nano, v); err == nil {
				t = t.UTC()
				if y := t.Year(); y < minCursorYear || y > maxCursorYear {
					err = fmt.Errorf("time %s is outside years %d-%d", v, minCursorYear, maxCursorYear)
				}
			}
			key = t
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: malformed cursor: %w", ErrInvalidQuery, err)
	}
	return key, c.ID, nil
}

// likeEscaper makes text match literally inside a LIKE pattern using the
// escape character '!', which (unlike '\') means the same on both drivers.
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// List returns one page of books matching opts, in opts.Sort order with ties
// broken by id in the same direction. Pagination is by keyset: each page
// starts after the previous page's last (sort value, id), so rows inserted or
// deleted between pages never cause a row to be skipped or repeated, and a
// deep page costs as much as the first. A bad sort, limit or cursor yields
// ErrInvalidQuery. Matching of Author and Query ignores case (ASCII only on
// SQLite).
func (s *Store) List(ctx context.Context, opts ListOptions) (Page, error) {
	sp, err := parseSort(opts.Sort)
	if err != nil {
		return Page{}, fmt.Errorf("list books: %w", err)
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return Page{}, fmt.Errorf("list books: %w: limit %d is not between 1 and %d", ErrInvalidQuery, limit, MaxLimit)
	}
	if opts.MinPriceCents != nil && opts.MaxPriceCents != nil && *opts.MinPriceCents > *opts.MaxPriceCents {
		return Page{}, fmt.Errorf("list books: %w: minimum price %d is above maximum %d",
			ErrInvalidQuery, *opts.MinPriceCents, *opts.MaxPriceCents)
	}

	var (
		key any
		id  int64
	)
	if opts.Cursor != "" {
		var err error
		if key, id, err = decodeCursor(sp, opts.Cursor); err != nil {
			return Page{}, fmt.Errorf("list books: %w", err)
		}
	}
	build := func(tx *gorm.DB) *gorm.DB {
		q := tx.Model(&bookRow{})
		if opts.Author != "" {
			// Case-insensitive through the column's collation, so the
			// (author, id) index still serves it.
			q = q.Where("author = ?", opts.Author)
		}
		if opts.Query != "" {
			pattern := "%" + likeEscaper.Replace(opts.Query) + "%"
			q = q.Where("(title LIKE ? ESCAPE '!' OR author LIKE ? ESCAPE '!')", pattern, pattern)
		}
		if opts.MinPriceCents != nil {
			q = q.Where("price_cents >= ?", *opts.MinPriceCents)
		}
		if opts.MaxPriceCents != nil {
			q = q.Where("price_cents <= ?", *opts.MaxPriceCents)
		}
		cmp, dir := ">", "ASC"
		if sp.desc {
			cmp, dir = "<", "DESC"
		}
		if opts.Cursor != "" {
			if sp.column == "id" {
				q = q.Where("id "+cmp+" ?", id)
			} else {
				// Spelled out rather than as a row comparison, which older
				// MySQL versions cannot match to an index range.
				q = q.Where("("+sp.column+" "+cmp+" ? OR ("+sp.column+" = ? AND id "+cmp+" ?))", key, key, id)
			}
		}
		if sp.column == "id" {
			q = q.Order("id " + dir)
		} else {
			q = q.Order(sp.column + " " + dir + ", id " + dir)
		}

		return q.Limit(limit + 1)
	}

	// The page and the position of "books" come from one snapshot, so the
	// page reflects every event up to that offset and none after it.
	var (
		rows []bookRow
		pos  Position
	)
	err = s.readTx(ctx, func(tx *gorm.DB) error {
		var err error
		if pos, err = s.positionTx(tx, 0); err != nil {
			return err
		}
		return build(tx).Find(&rows).Error
	})
	if err != nil {
		return Page{}, fmt.Errorf("list books: %w", translate(err))
	}
	page := Page{Books: make([]Book, 0, min(len(rows), limit)), Position: pos}
	for i, r := range rows {
		if i == limit {
			page.NextCursor = encodeCursor(sp, page.Books[limit-1])
			break
		}
		page.Books = append(page.Books, toBook(r))
	}
	return page, nil
}
