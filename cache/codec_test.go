package cache

import (
	"reflect"
	"testing"
	"time"

	"github.com/bookhub/bookhub/store"
)

func sampleValues() []any {
	t1 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	full := store.Book{ID: 7, Title: "T \"q\" <x> \u2028", Author: "A", ISBN: "9780262033848", PriceCents: 1999,
		Stock: 3, CostCents: 1200, Supplier: "S ü", Version: 4, CreatedAt: t1, UpdatedAt: t1.Add(time.Microsecond)}
	page := store.Page{NextCursor: "eyJzIjoiaWQifQ", Position: store.Position{Offset: 42, Epoch: "ep-1"}}
	for i := range 20 {
		b := full
		b.ID = int64(i + 1)
		page.Books = append(page.Books, b)
	}
	return []any{
		full,
		store.Book{}, // zero times, empty strings
		page,
		store.Page{Books: []store.Book{}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for i, v := range sampleValues() {
		raw, err := encodeValue(v)
		if err != nil {
			t.Fatalf("value %d: encode: %v", i, err)
		}
		got, err := decodeValue(raw)
		if err != nil {
			t.Fatalf("value %d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("value %d round-trips to %#v, want %#v", i, got, v)
		}
	}
}

func TestCodecRefuses(t *testing.T) {
	if _, err := encodeValue(42); err == nil {
		t.Error("encode of an int succeeded")
	}
	good, _ := encodeValue(sampleValues()[2])
	bad := []string{"", "x", "B", "P", "b{}", string(good[:len(good)-1]), string(good) + "x", "P\x00\x00\x00\xff\xff\x03"}
	for _, raw := range bad {
		if _, err := decodeValue([]byte(raw)); err == nil {
			t.Errorf("decode %q succeeded", raw)
		}
	}
}

func TestListKeyCanonical(t *testing.T) {
	one, two := int64(1), int64(2)
	same := [][2]store.ListOptions{
		{{}, {Limit: store.DefaultLimit, Sort: "id"}},
		{{MinPriceCents: &one}, {MinPriceCents: new(int64(1))}},
	}
	for _, p := range same {
		if listKey(p[0]) != listKey(p[1]) {
			t.Errorf("%+v and %+v have different keys", p[0], p[1])
		}
	}
	// Options the store distinguishes must have distinct keys.
	distinct := []store.ListOptions{
		{}, {Limit: 5}, {Sort: "-id"}, {Author: "a"}, {Query: "a"}, {Author: "aq0:"},
		{Author: "a1:q0:"}, {Author: "a", Query: "1:"}, {MinPriceCents: &one}, {MaxPriceCents: &one},
		{MinPriceCents: &two}, {Cursor: "c"}, {Cursor: string(make([]byte, 500))}, {Cursor: string(make([]byte, 501))},
	}
	seen := map[string]int{}
	for i, o := range distinct {
		k := listKey(o)
		if j, ok := seen[k]; ok {
			t.Errorf("options %d and %d share key %q", j, i, k)
		}
		seen[k] = i
		if len(k) > maxRawKey+1 {
			t.Errorf("key of options %d is %d bytes long", i, len(k))
		}
	}
}

func BenchmarkCodec(b *testing.B) {
	vals := sampleValues()
	for _, c := range []struct {
		name string
		v    any
	}{{"Book", vals[0]}, {"Page20", vals[2]}} {
		raw, _ := encodeValue(c.v)
		b.Run(c.name+"/Encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeValue(c.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/Decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := decodeValue(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
