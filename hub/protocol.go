package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
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
	codeBadSince             = "bad_since"
	codeHistoryUnavailable   = "history_unavailable"
	codeBadSlow              = "bad_slow"
	codeForbiddenChannel     = "forbidden_channel"
	codeRefreshUnsupported   = "refresh_unsupported"
	codeInvalidToken         = "invalid_token"
	codeSubjectMismatch      = "subject_mismatch"
)

var codeMessages = map[string]string{
	codeBadJSON:              "message is not a valid JSON object",
	codeUnknownType:          `type must be "subscribe", "unsubscribe", "ping" or "refresh"`,
	codeMissingChannel:       "channel is required",
	codeUnknownChannel:       "no such channel",
	codeNotSubscribed:        "not subscribed to this channel",
	codeTooManySubscriptions: "subscription limit reached",
	codeBinaryUnsupported:    "binary frames are not supported; send JSON text frames",
	codeBadSince:             `since must be {"offset":<non-negative integer>,"epoch":"<epoch>"}`,
	codeHistoryUnavailable:   "history is unavailable right now; not subscribed, retry shortly or refetch over REST",
	codeBadSlow:              `slow must be "disconnect" or "conflate"`,
	codeForbiddenChannel:     "this token may not subscribe to this channel",
	codeRefreshUnsupported:   "this server does not refresh tokens on open sockets; reconnect with the new token",
	codeInvalidToken:         "the token is missing or not valid; the connection keeps its current token",
	codeSubjectMismatch:      "the token is for another subject; the connection keeps its current token",
}

// clientMessage is everything a client may send.
type clientMessage struct {
	Type    string          `json:"type"`
	Channel *string         `json:"channel"`
	ID      json.RawMessage `json:"id"`
	// Since asks a subscribe to resume after a position; decoded by
	// parseSinceMessage so that a bad one is its own error.
	Since json.RawMessage `json:"since"`
	// Slow sets the connection's slow-consumer policy: "disconnect" or
	// "conflate".
	Slow *string `json:"slow"`
	// Token is the new access token of a refresh. It is never logged or
	// echoed; ReadLimit bounds it with the rest of the message.
	Token *string `json:"token"`
}

// reply is every server frame except welcome and event.
type reply struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
	// Recovered, Offset and Epoch answer a subscribe with since.
	Recovered *bool   `json:"recovered,omitempty"`
	Offset    *uint64 `json:"offset,omitempty"`
	Epoch     string  `json:"epoch,omitempty"`
	// ExpiresAt answers a refresh and announces token_expiring, with
	// ExpiresIn (whole seconds left, never negative).
	ExpiresAt string `json:"expires_at,omitempty"`
	ExpiresIn *int64 `json:"expires_in,omitempty"`
}

// subscribedReply answers a subscribe; res is nil without since. On
// recovery the position is where the replay starts (the client's own);
// otherwise it is the channel's current position, which the subscription
// continues after.
func subscribedReply(id json.RawMessage, channel string, res *subscribeResult) reply {
	r := reply{Type: "subscribed", ID: id, Channel: channel}
	if res != nil {
		rec, off := res.recovered, res.position.Offset
		r.Recovered, r.Offset, r.Epoch = &rec, &off, res.position.Epoch
	}
	return r
}

// parseSinceMessage decodes the since member of a subscribe.
func parseSinceMessage(raw json.RawMessage) (*since, bool) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, true
	}
	var v struct {
		Offset json.Number `json:"offset"`
		Epoch  string      `json:"epoch"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || v.Offset == "" || len(v.Epoch) > maxEpochLen {
		return nil, false
	}
	off, err := strconv.ParseUint(string(v.Offset), 10, 64)
	if err != nil {
		return nil, false
	}
	return &since{Offset: off, Epoch: v.Epoch}, true
}

// maxEpochLen bounds a client's epoch; real ones are 16 hex digits.
const maxEpochLen = 64

var (
	errBadSince   = errors.New("since: offsets must be non-negative integers")
	errSinceCount = errors.New("since: give one offset per subscribed channel")
	errBadEpoch   = errors.New("since: epoch is too long")
)

// incompleteMessage explains an incomplete frame to a person reading it.
const incompleteMessage = "events after this offset may be missing; resubscribe with since at this position or refetch over REST"

func encodeIncomplete(pos Position) []byte {
	off := pos.Offset
	return encodeReply(reply{Type: "incomplete", Channel: pos.Channel, Offset: &off, Epoch: pos.Epoch, Message: incompleteMessage})
}

type welcome struct {
	Type      string `json:"type"`
	Instance  string `json:"instance"`
	Sub       string `json:"sub"`
	Role      string `json:"role"`
	ExpiresAt string `json:"expires_at,omitempty"`
	// Slow is the connection's slow-consumer policy.
	Slow string `json:"slow"`
}

func encodeWelcome(instance string, id Identity, slow string) []byte {
	w := welcome{Type: "welcome", Instance: instance, Sub: id.Subject, Role: id.Role, Slow: slow}
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

func eventFrameLen(pos Position, body []byte) int {
	return len(eventPrefix) + len(pos.Channel) + len(pos.Epoch) + 40 + len(body)
}

// appendEventFrame appends {"type":"event","channel":"<channel>",
// "offset":N,"epoch":"<e>",<body> to dst, where body is the event after its
// opening brace ({} gives no comma). Offset and epoch are left out when the
// offset is 0 (not sequenced).
func appendEventFrame(dst []byte, channel string, pos Position, body []byte) []byte {
	dst = append(dst, eventPrefix...)
	dst = appendJSONString(dst, channel)
	if pos.Offset != 0 {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, pos.Offset, 10)
		dst = append(dst, `,"epoch":`...)
		dst = appendJSONString(dst, pos.Epoch)
	}
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
