package rest

import (
	"errors"
	"testing"
)

// These white-box tests pin the exact-decimal rules that the black-box suite
// exercises through HTTP, at the edges HTTP makes awkward. The ISBN and text
// rules are the store's and are tested there.

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in    string
		scale int
		want  int64
		err   error
	}{
		{"0", 2, 0, nil},
		{"-0.00", 2, 0, nil},
		{"12.5", 2, 1250, nil},
		{"12.50", 2, 1250, nil},
		{"12.500000", 2, 1250, nil},
		{"0.01", 2, 1, nil},
		{"1.25e1", 2, 1250, nil},
		{"125E-1", 2, 1250, nil},
		{"1e+2", 0, 100, nil},
		{"-3.1", 2, -310, nil},
		{"0e999999999999999999999", 2, 0, nil},
		{"1" + "00000" + "e-5", 0, 1, nil},
		{"90071992547409.91", 2, 9007199254740991, nil},
		{"90071992547409.92", 2, 0, errTooLarge},
		{"1.001", 2, 0, errTooPrecise},
		{"1e-3", 2, 0, errTooPrecise},
		{"1.5", 0, 0, errTooPrecise},
		{"1e-99999999999999999999", 2, 0, errTooPrecise},
		{"1e99999999999999999999", 2, 0, errTooLarge},
		{"99999999999999999999", 0, 0, errTooLarge},
		{"", 2, 0, errNumberSyntax},
		{"-", 2, 0, errNumberSyntax},
		{"01", 2, 0, errNumberSyntax},
		{"1.", 2, 0, errNumberSyntax},
		{".5", 2, 0, errNumberSyntax},
		{"1e", 2, 0, errNumberSyntax},
		{"+1", 2, 0, errNumberSyntax},
		{"1x", 2, 0, errNumberSyntax},
		{"NaN", 2, 0, errNumberSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDecimal(tt.in, tt.scale, maxSafeInteger)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("parseDecimal(%q, %d) = %d, %v; want %d, %v", tt.in, tt.scale, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestAppendCents(t *testing.T) {
	for v, want := range map[int64]string{0: "0.00", 5: "0.05", 1250: "12.50", -310: "-3.10", maxSafeInteger: "90071992547409.91"} {
		if got := string(appendCents(nil, v)); got != want {
			t.Errorf("appendCents(%d) = %s, want %s", v, got, want)
		}
	}
}

func BenchmarkDecodeBook(b *testing.B) {
	body := []byte(`{"title":"Dune","author":"Frank Herbert","isbn":"978-0-306-40615-7","price":12.50,"stock":3}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeBook(body, modeCreate); err != nil {
			b.Fatal(err)
		}
	}
}
