package hub_test

import (
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	tests := []struct {
		name, payload string
	}{
		{"BareByte", "\xff"},
		{"InsideTheID", `{"type":"ping","id":"a` + "\xff" + `"}`},
		{"InsideTheChannel", `{"type":"subscribe","channel":"books` + "\xc0" + `"}`},
		{"Overlong", "\xc0\xaf"},
		{"EncodedSurrogate", `{"type":"` + "\xed\xa0\x80" + `"}`},
		{"Truncated", `{"type":"ping"}` + "\xe2\x82"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c := e.dial(t, "subscribe=books")
			c.expectType("subscribed")
			c.sendText(tt.payload)
			c.expectClose(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonInvalidUTF8 {
				t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonInvalidUTF8)
			}
			if s := e.hub.Stats(); s != (hub.Stats{}) {
				t.Fatalf("Stats = %+v, want nothing left", s)
			}
		})
	}
}

// TestUTF8AcrossFrames: validity is a property of the message, so a
// character split over two frames of one message is fine.
func TestUTF8AcrossFrames(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	w, err := c.ws.Writer(testContext(t), websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`{"type":"ping","id":"caf` + "\xc3", "\xa9" + `"}`} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatalf("write frame: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.expectJSON(`{"type":"pong","id":"café"}`)
}

// TestIDEchoIsReencoded: an id is decoded and encoded again, never copied,
// so what comes back is valid JSON that strict parsers accept.
func TestIDEchoIsReencoded(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	tests := []struct {
		name, id, want string
	}{
		{"LoneSurrogateBecomesReplacement", `"\ud800x"`, `"\ufffdx"`},
		{"EscapesKeepTheirValue", `"\u00e9\n\u0000"`, `"é\n\u0000"`},
		{"HTMLSurvives", `"<a&b>"`, `"<a&b>"`},
		{"Exponent", `-1.5e3`, `-1.5e3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendText(`{"type":"ping","id":` + tt.id + `}`)
			raw := c.readRaw() // readRaw checks the frame is UTF-8
			if strings.Contains(strings.ToLower(raw), `\ud800`) {
				t.Fatalf("reply %s passes a lone surrogate on", raw)
			}
			if !jsonEqual(t, raw, `{"type":"pong","id":`+tt.want+`}`) {
				t.Fatalf("reply %s, want id %s", raw, tt.want)
			}
		})
	}
}

// TestUnknownMessages: anything that is not a known message gets an error
// frame and the socket stays open, up to and including ReadLimit bytes.
func TestUnknownMessages(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	pad := func(prefix, suffix string) string {
		return prefix + strings.Repeat("x", hub.DefaultReadLimit-len(prefix)-len(suffix)) + suffix
	}
	tests := []struct {
		name, send, code string
	}{
		{"UnknownType", `{"type":"publish","channel":"books"}`, "unknown_type"},
		{"UnknownTypeHugeButUnderTheLimit", pad(`{"type":"nonsense","pad":"`, `"}`), "unknown_type"},
		{"NotJSONHugeButUnderTheLimit", pad("", ""), "bad_json"},
		{"NonObjectString", `"subscribe"`, "bad_json"},
		{"NonObjectNumber", `42`, "bad_json"},
		{"NonObjectNull", `null`, "bad_json"},
		{"NonObjectBool", `true`, "bad_json"},
		{"NonObjectArrayOfMessages", `[{"type":"ping"}]`, "bad_json"},
		{"Empty", ``, "bad_json"},
		{"Whitespace", " \n\t", "bad_json"},
		{"TrailingGarbage", `{"type":"ping"}{"type":"ping"}`, "bad_json"},
		{"TypeWrongCase", `{"type":"PING"}`, "unknown_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendText(tt.send)
			m := c.expectType("error")
			if m["code"] != tt.code || m["message"] == "" {
				t.Fatalf("error frame %v, want code %q with a message", m, tt.code)
			}
			if len(m) > 3 { // type, code, message: nothing of the input echoed
				t.Fatalf("error frame %v carries more than type, code and message", m)
			}
			c.sync()
		})
	}
	t.Run("KnownTypeHugeButUnderTheLimit", func(t *testing.T) {
		c.roundTrip(pad(`{"type":"ping","id":"big","pad":"`, `"}`), `{"type":"pong","id":"big"}`)
	})
	t.Run("BinaryFrames", func(t *testing.T) {
		for _, payload := range []string{`{"type":"ping"}`, "\xff\xfe", "", strings.Repeat("\x00", hub.DefaultReadLimit)} {
			if err := c.ws.Write(testContext(t), websocket.MessageBinary, []byte(payload)); err != nil {
				t.Fatalf("write binary: %v", err)
			}
			if m := c.expectType("error"); m["code"] != "binary_unsupported" {
				t.Fatalf("error frame %v, want binary_unsupported", m)
			}
		}
		c.sync()
	})
	if got := e.hub.Stats(); got.Connections != 1 {
		t.Fatalf("Stats = %+v, want the connection still open", got)
	}
}
