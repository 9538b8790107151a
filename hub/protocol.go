package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// Error codes sent in {"type":"error","code":...} frames. The connection
// stays usable after every one of them.
const (
	codeBadJSON              = "bad_json"
	codeUnknownType          = "unknown_type"
	codeMissingChannel       = "missing_channel"
	codeUnknownChannel       = "unknown_channel"
	codeNotSubscribed        = "not_subscribed"
	codeTooManySubscriptions = "too_many_subscriptions"
	codeBinaryUnsupported    = "binary_unsupported"
)

var codeMessages = map[string]string{
	codeBadJSON:              "message is not a valid JSON object",
	codeUnknownType:          `type must be "subscribe", "unsubscribe" or "ping"`,
	codeMissingChannel:       "channel is required",
	codeUnknownChannel:       "no such channel",
	codeNotSubscribed:        "not subscribed to this channel",
	codeTooManySubscriptions: "subscription limit reached",
	codeBinaryUnsupported:    "binary frames are not supported; send JSON text frames",
}

// clientMessage is everything a client may send.
type clientMessage struct {
	Type    string          `json:"type"`
	Channel *string         `json:"channel"`
	ID      json.RawMessage `json:"id"`
}

// reply is every server frame except welcome and event.
type reply struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

type welcome struct {
	Type      string `json:"type"`
	Instance  string `json:"instance"`
	Sub       string `json:"sub"`
	Role      string `json:"role"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

func encodeWelcome(instance string, id Identity) []byte {
	w := welcome{Type: "welcome", Instance: instance, Sub: id.Subject, Role: id.Role}
	if !id.ExpiresAt.IsZero() {
		w.ExpiresAt = id.ExpiresAt.UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(w) // only strings: cannot fail
	return b
}

func encodeReply(r reply) []byte {
	b, _ := json.Marshal(r) // strings and validated raw JSON: cannot fail
	return b
}

func errorReply(id json.RawMessage, code string) reply {
	return reply{Type: "error", ID: id, Code: code, Message: codeMessages[code]}
}

// parseClientMessage decodes one text frame, which the reader has checked
// is UTF-8. On failure it returns the error reply to send; the id is echoed
// whenever it could be read.
//
// The id is the only client value copied into replies as JSON, so it is
// never copied raw: json.Unmarshal has checked the whole message, a number
// is echoed as written (digits, sign, dot, exponent), and a string is
// decoded and encoded again, which turns escapes that decode to no valid
// text (a lone surrogate such as "\ud800") into U+FFFD instead of passing
// them on to every strict parser downstream.
func parseClientMessage(data []byte) (clientMessage, *reply) {
	var m clientMessage
	// Unmarshal takes null (and only null) as an empty object; the protocol
	// wants an object, so anything else is refused by its first byte.
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		r := errorReply(nil, codeBadJSON)
		return m, &r
	}
	if err := json.Unmarshal(data, &m); err != nil {
		r := errorReply(nil, codeBadJSON)
		return m, &r
	}
	if bytes.Equal(m.ID, []byte("null")) {
		m.ID = nil
	}
	if len(m.ID) == 0 {
		return m, nil
	}
	switch c := m.ID[0]; {
	case c == '"':
		var s string
		_ = json.Unmarshal(m.ID, &s) // a string that the whole message already decoded
		m.ID, _ = json.Marshal(s)    // a string: cannot fail
	case c == '-' || (c >= '0' && c <= '9'):
	default:
		r := errorReply(nil, codeBadJSON)
		r.Message = "id must be a string or a number"
		return m, &r
	}
	return m, nil
}

// eventPrefix starts every event frame; the channel and the event's own
// fields follow.
const eventPrefix = `{"type":"event","channel":`

var errNotObject = errors.New("hub: event is not a JSON object")

// eventBody returns event without its opening brace and leading whitespace,
// ready to follow the envelope fields. Only the framing is checked: the
// caller encoded the event and the hub does not parse it again per publish.
func eventBody(event []byte) ([]byte, error) {
	event = bytes.TrimLeft(event, " \t\r\n")
	if len(event) < 2 || event[0] != '{' {
		return nil, errNotObject
	}
	body := bytes.TrimLeft(event[1:], " \t\r\n")
	if len(body) == 0 {
		return nil, errNotObject
	}
	return body, nil
}

func eventFrameLen(channel string, body []byte) int {
	return len(eventPrefix) + len(channel) + 3 + len(body)
}

// appendEventFrame appends {"type":"event","channel":"<channel>",<body> to
// dst, where body is the event after its opening brace ({} gives no comma).
func appendEventFrame(dst []byte, channel string, body []byte) []byte {
	dst = append(dst, eventPrefix...)
	dst = appendJSONString(dst, channel)
	if body[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, body...)
}

// appendJSONString appends s as a JSON string. Channel names are almost
// always plain ASCII, which is copied as is; anything else goes through
// encoding/json so the frame stays valid whatever ValidChannel accepts.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string: cannot fail
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
