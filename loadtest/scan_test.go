package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// refFields decodes data with encoding/json into the same fields the
// scanner keeps, matching keys exactly (a map keeps them as written), so it
// is the reference the scanner must agree with.
func refFields(data []byte) (frameFields, error) {
	var f frameFields
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return f, err
	}
	if top == nil {
		return f, errFrame // the literal null: not a frame
	}
	str := func(raw json.RawMessage, dst *[]byte) error {
		if raw == nil {
			return nil
		}
		var s *string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		if s != nil {
			*dst = []byte(*s)
		}
		return nil
	}
	for key, dst := range map[string]*[]byte{
		"type": &f.Type, "channel": &f.Channel, "epoch": &f.Epoch, "id": &f.ID,
		"event": &f.Event, "code": &f.Code, "message": &f.Message,
	} {
		if err := str(top[key], dst); err != nil {
			return f, err
		}
	}
	if raw := top["offset"]; raw != nil {
		if err := json.Unmarshal(raw, &f.Offset); err != nil {
			return f, err
		}
	}
	if raw := top["book_id"]; raw != nil {
		if err := json.Unmarshal(raw, &f.BookID); err != nil {
			return f, err
		}
	}
	if raw := top["book"]; raw != nil {
		var book map[string]json.RawMessage
		if err := json.Unmarshal(raw, &book); err != nil {
			return f, err
		}
		if err := str(book["title"], &f.Title); err != nil {
			return f, err
		}
	}
	return f, nil
}

// sameFields compares everything but the scratch buffer; nil and empty
// slices are equal, as a JSON "" and an absent field both read as empty.
func sameFields(a, b frameFields) bool {
	eq := bytes.Equal
	return eq(a.Type, b.Type) && eq(a.Channel, b.Channel) && eq(a.Epoch, b.Epoch) && eq(a.ID, b.ID) &&
		eq(a.Event, b.Event) && eq(a.Title, b.Title) && eq(a.Code, b.Code) && eq(a.Message, b.Message) &&
		a.Offset == b.Offset && a.BookID == b.BookID
}

func show(f frameFields) string {
	return "type=" + string(f.Type) + " channel=" + string(f.Channel) + " epoch=" + string(f.Epoch) +
		" id=" + string(f.ID) + " event=" + string(f.Event) + " title=" + string(f.Title) +
		" code=" + string(f.Code) + " message=" + string(f.Message)
}

// scanCases are frames the scanner must read exactly as encoding/json does,
// accepting or refusing each alike.
var scanCases = []struct {
	name  string
	frame string
}{
	{"EventAsTheHubWritesIt", `{"type":"event","channel":"books","offset":41,"epoch":"9f1c2a7e5b3d4c60","id":"0193a1b2c3d4","event":"book.created","book_id":7,"book":{"id":7,"title":"lt-ab12cd34-5","author":"A","isbn":null,"price":9.99,"stock":3,"version":1,"tags":["x",{"title":"nested, not ours"}]},"at":"2026-01-01T00:00:00Z","origin":"lt-1"}`},
	{"Welcome", `{"type":"welcome","instance":"laptop","sub":"ed","role":"editor","limits":{"a":[1,2,3]}}`},
	{"Subscribed", `{"type":"subscribed","channel":"books","recovered":true,"offset":3,"epoch":"e"}`},
	{"ErrorFrame", `{"type":"error","code":"unknown_type","message":"say \"subscribe\"\nor \\ping"}`},
	{"Incomplete", `{"type":"incomplete","channel":"books","offset":12,"epoch":"e","message":"events after this offset may be missing"}`},
	{"Whitespace", " \t\r\n{ \"type\" : \"event\" ,\n\"book\" : { \"title\" : \"t\" } , \"book_id\" : -3 }\n "},
	{"EscapedTitle", `{"type":"event","book":{"title":"lt-\u0061b-1 \"quoted\" \\ \/ \b\f\n\r\t"}}`},
	{"EscapedKey", `{"\u0074ype":"event","book":{"ti\u0074le":"lt-x-2"}}`},
	{"UnicodeEscapes", `{"type":"event","book":{"title":"caf\u00e9 \u20ac \ud83d\ude00 é€😀"}}`},
	{"LoneSurrogate", `{"type":"event","book":{"title":"a\ud83db \udc00c \ud83d\u0041"}}`},
	{"NullFields", `{"type":null,"channel":null,"id":null,"offset":null,"book_id":null,"book":null}`},
	{"BookWithoutTitle", `{"type":"event","book":{}}`},
	{"EmptyObject", `{}`},
	{"DuplicateKeysLastWins", `{"type":"welcome","type":"event","offset":1,"offset":2,"book":{"title":"a"},"book":{"title":"b"}}`},
	{"BigNumbers", `{"offset":18446744073709551615,"book_id":-9223372036854775808,"other":1.5e300}`},
	{"NegativeZeroBookID", `{"book_id":-0}`},
	{"SkippedValuesOfEveryKind", `{"a":[],"b":{},"c":[[[]]],"d":[true,false,null,-0.5e-3,"s"],"e":{"f":{"g":[{}]}},"type":"event"}`},

	{"NotAnObject", `["type","event"]`},
	{"JSONNull", `null`},
	{"Empty", ``},
	{"Truncated", `{"type":"event","book":{"title":"x"}`},
	{"TrailingData", `{"type":"event"} {}`},
	{"TrailingComma", `{"type":"event",}`},
	{"MissingColon", `{"type" "event"}`},
	{"SingleQuotes", `{'type':'event'}`},
	{"UnquotedKey", `{type:"event"}`},
	{"BadEscape", `{"type":"ev\ent"}`},
	{"ShortUnicodeEscape", `{"type":"\u12"}`},
	{"BadHexInEscape", `{"type":"\u12G4"}`},
	{"ControlCharInString", "{\"type\":\"ev\x01ent\"}"},
	{"NewlineInString", "{\"type\":\"ev\nent\"}"},
	{"UnterminatedString", `{"type":"event`},
	{"LeadingZero", `{"offset":01}`},
	{"LoneMinus", `{"a":-}`},
	{"DotWithoutDigits", `{"a":1.}`},
	{"ExponentWithoutDigits", `{"a":1e}`},
	{"BadLiteral", `{"a":nul}`},
	{"TrueInCapitals", `{"a":True}`},
	{"UnbalancedArray", `{"a":[1,2}`},
	{"ArrayTrailingComma", `{"a":[1,]}`},
	{"OffsetFraction", `{"offset":1.5}`},
	{"OffsetExponent", `{"offset":1e3}`},
	{"OffsetNegative", `{"offset":-1}`},
	{"OffsetOverflow", `{"offset":18446744073709551616}`},
	{"OffsetString", `{"offset":"7"}`},
	{"BookIDOverflow", `{"book_id":9223372036854775808}`},
	{"BookIDTooNegative", `{"book_id":-9223372036854775809}`},
	{"TypeNumber", `{"type":5}`},
	{"TypeObject", `{"type":{}}`},
	{"BookString", `{"book":"title"}`},
	{"BookArray", `{"book":[]}`},
	{"TitleNumber", `{"book":{"title":7}}`},
}

func TestScanMatchesEncodingJSON(t *testing.T) {
	for _, tc := range scanCases {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := refFields([]byte(tc.frame))
			var got frameFields
			gotErr := got.scan([]byte(tc.frame))
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("scan error = %v, encoding/json error = %v", gotErr, wantErr)
			}
			if gotErr == nil && !sameFields(got, want) {
				t.Errorf("scan read\n  %s\nencoding/json read\n  %s", show(got), show(want))
			}
		})
	}
}

func TestScanFields(t *testing.T) {
	var f frameFields
	frame := `{"type":"event","channel":"books","offset":41,"epoch":"9f1c","id":"ev-1","event":"book.deleted","book_id":-7,"book":{"title":"lt-\u0041-\"3\""},"code":"c","message":"m"}`
	if err := f.scan([]byte(frame)); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"type": f.Type, "channel": f.Channel, "epoch": f.Epoch, "id": f.ID,
		"event": f.Event, "title": f.Title, "code": f.Code, "message": f.Message} {
		want := map[string]string{"type": "event", "channel": "books", "epoch": "9f1c", "id": "ev-1",
			"event": "book.deleted", "title": `lt-A-"3"`, "code": "c", "message": "m"}[name]
		if string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if f.Offset != 41 || f.BookID != -7 {
		t.Errorf("offset, book_id = %d, %d; want 41, -7", f.Offset, f.BookID)
	}

	// A second scan forgets the first frame's fields, and reuses scratch.
	if err := f.scan([]byte(`{"type":"pong"}`)); err != nil {
		t.Fatal(err)
	}
	if string(f.Type) != "pong" || f.Title != nil || f.Offset != 0 || f.BookID != 0 || f.ID != nil {
		t.Errorf("second scan kept old fields: %s offset %d", show(f), f.Offset)
	}
}

func TestScanAllocatesNothing(t *testing.T) {
	frames := [][]byte{
		benchFrame(3, "book.updated", "lt-x-3"),
		[]byte(`{"type":"event","book":{"title":"lt-\u0078-4 \ud83d\ude00"},"id":"a\/b"}`),
	}
	var f frameFields
	for _, fr := range frames {
		_ = f.scan(fr) // grow scratch once
		if n := testing.AllocsPerRun(100, func() { _ = f.scan(fr) }); n != 0 {
			t.Errorf("scan of %s: %.1f allocations per frame, want 0", fr, n)
		}
	}
}

func TestScanDeepNesting(t *testing.T) {
	deep := `{"a":` + strings.Repeat("[", maxDepth+10) + strings.Repeat("]", maxDepth+10) + `}`
	var f frameFields
	if err := f.scan([]byte(deep)); err == nil {
		t.Error("scan accepted a frame nested deeper than maxDepth")
	}
	ok := `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"type":"event"}`
	if err := f.scan([]byte(ok)); err != nil || string(f.Type) != "event" {
		t.Errorf("scan of 100 nested arrays = %v, type %q", err, f.Type)
	}
}

func TestSkipPlain(t *testing.T) {
	// The eight-bytes-at-a-time path must stop at exactly the byte the
	// byte-by-byte definition stops at, wherever in a word it falls.
	for _, stop := range []byte{'"', '\\', 0x00, 0x1f, '\n'} {
		for at := range 20 {
			data := []byte(strings.Repeat("aé€ ~\x7f", 5)[:at] + string(stop) + "tail")
			want := 0
			for want < len(data) && plain[data[want]] {
				want++
			}
			if got := skipPlain(data, 0); got != want {
				t.Errorf("stop %q at %d: skipPlain = %d, want %d", stop, at, got, want)
			}
		}
	}
	if got := skipPlain([]byte("all plain, no stop"), 0); got != len("all plain, no stop") {
		t.Errorf("skipPlain without a stop = %d", got)
	}
}

// FuzzScan checks the scanner against encoding/json on arbitrary input:
// it must never accept what is not JSON, and wherever both accept a frame
// (valid UTF-8, so no replacement characters differ) they must read the
// same fields.
func FuzzScan(f *testing.F) {
	for _, tc := range scanCases {
		f.Add([]byte(tc.frame))
	}
	f.Add(benchFrame(1, "book.created", "lt-a-1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got frameFields
		err := got.scan(data)
		if err == nil && !json.Valid(data) {
			t.Fatalf("scan accepted invalid JSON %q", data)
		}
		if !utf8.Valid(data) {
			return
		}
		want, wantErr := refFields(data)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: scan error = %v, encoding/json error = %v", data, err, wantErr)
		}
		if err == nil && !sameFields(got, want) {
			t.Fatalf("%q: scan read %s, encoding/json read %s", data, show(got), show(want))
		}
	})
}
