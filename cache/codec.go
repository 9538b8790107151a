package cache

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/bookhub/bookhub/store"
)

// Encoding of values in Redis: one kind byte, then the JSON of the value.
// JSON round-trips every field of store.Book exactly as the store returns
// it (times in UTC with their nanoseconds; a time in another location would
// come back as the same instant in a fixed zone). BenchmarkCodec measures
// it.
const (
	kindBook = 'b'
	kindPage = 'p'
)

func encodeValue(v any) ([]byte, error) {
	var kind byte
	switch v.(type) {
	case store.Book:
		kind = kindBook
	case store.Page:
		kind = kindPage
	default:
		return nil, fmt.Errorf("cache: cannot encode %T", v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cache: encode %T: %w", v, err)
	}
	return append([]byte{kind}, b...), nil
}

func decodeValue(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("cache: empty entry")
	}
	switch raw[0] {
	case kindBook:
		var b store.Book
		if err := json.Unmarshal(raw[1:], &b); err != nil {
			return nil, fmt.Errorf("cache: decode book: %w", err)
		}
		return b, nil
	case kindPage:
		var p store.Page
		if err := json.Unmarshal(raw[1:], &p); err != nil {
			return nil, fmt.Errorf("cache: decode page: %w", err)
		}
		if p.Books == nil {
			p.Books = []store.Book{} // as the store returns an empty page
		}
		return p, nil
	}
	return nil, fmt.Errorf("cache: unknown entry kind %q", raw[0])
}

// maxRawKey is the longest list key kept as is; longer ones (long cursors
// or queries) are hashed, so Redis keys stay short.
const maxRawKey = 128

// listKey is a canonical encoding of opts: options the store treats alike
// (Limit 0 and DefaultLimit, Sort "" and "id") get the same key, and every
// string is length-prefixed so no two options collide.
func listKey(o store.ListOptions) string {
	limit, sort := o.Limit, o.Sort
	if limit == 0 {
		limit = store.DefaultLimit
	}
	if sort == "" {
		sort = "id"
	}
	b := make([]byte, 0, 64+len(o.Cursor)+len(o.Author)+len(o.Query))
	b = append(b, 'l')
	b = strconv.AppendInt(b, int64(limit), 10)
	b = appendString(b, 's', sort)
	b = appendString(b, 'a', o.Author)
	b = appendString(b, 'q', o.Query)
	b = appendPrice(b, '<', o.MinPriceCents)
	b = appendPrice(b, '>', o.MaxPriceCents)
	b = appendString(b, 'c', o.Cursor)
	if len(b) <= maxRawKey {
		return string(b)
	}
	sum := sha256.Sum256(b)
	return "h" + base64.RawURLEncoding.EncodeToString(sum[:])
}

func appendString(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendPrice(b []byte, tag byte, p *int64) []byte {
	b = append(b, tag)
	if p == nil {
		return append(b, '-')
	}
	return strconv.AppendInt(b, *p, 10)
}
