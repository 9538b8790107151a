package redisbus

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/events"
)

// wirePrefix starts every message. The version is part of what is signed,
// so a later format cannot be confused with this one.
const wirePrefix = "v1."

// macText is the length of the base64url (unpadded) HMAC-SHA256.
var macText = base64.RawURLEncoding.EncodedLen(sha256.Size)

// keyInfo separates the bus key from every other use of the deployment's
// secret (the JWT signature first of all): a key derived for one purpose
// is useless for another.
const keyInfo = "bookhub bus v1"

// MinSigningKeyBytes is the shortest Options.SigningKey New accepts: the
// length DeriveSigningKey returns, the output size of SHA-256.
const MinSigningKeyBytes = sha256.Size

// ErrTooLarge is returned by Publish for an event whose message would
// exceed Options.MaxMessageBytes; receivers would refuse it.
// It wraps events.ErrUndeliverable: publishing it again cannot succeed.
var ErrTooLarge = fmt.Errorf("redisbus: event too large: %w", events.ErrUndeliverable)

// DeriveSigningKey returns the bus key of a deployment from its secret:
// auth.DeriveKey with the purpose "bookhub bus v1" (HKDF-SHA256, RFC 5869,
// no salt, 32 bytes). Every instance given the same secret derives the same
// key, so they hear each other; the secret itself never signs a bus
// message, so a bus key that leaks (it is held by every instance, like the
// secret) does not sign tokens. It returns nil for a secret shorter than
// auth.MinSecretLen (New then refuses the key).
func DeriveSigningKey(secret []byte) []byte {
	key, err := auth.DeriveKey(secret, keyInfo)
	if err != nil {
		return nil
	}
	return key
}

// Reasons a message from the bus is refused. They go to the log as they
// are: none quotes the payload, which may be hostile.
var (
	errOversized = errors.New("larger than MaxMessageBytes")
	errUnsigned  = errors.New("not a signed v1 message")
	errBadMAC    = errors.New("signature does not verify (forged, tampered, another channel, or another deployment's key)")
	errNotEvent  = errors.New("signed body is not an event")
)

// codec seals and opens the messages of one channel with one key. It is
// safe for concurrent use.
type codec struct {
	key     []byte
	channel string
	max     int
	macs    sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key
}

func newCodec(key []byte, channel string, maxBytes int) *codec {
	c := &codec{key: bytes.Clone(key), channel: channel, max: maxBytes}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key) }
	return c
}

// mac signs the version, the channel and the body, each separated by a NUL
// byte (none of them can contain one before the body), so a message copied
// to another deployment's channel fails as surely as an altered one.
func (c *codec) mac(body []byte) []byte {
	h := c.macs.Get().(hash.Hash)
	defer c.macs.Put(h)
	h.Reset()
	h.Write([]byte(wirePrefix))
	h.Write([]byte{0})
	h.Write([]byte(c.channel))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// seal returns the message that carries body: "v1." + base64url(mac) + "."
// + body.
func (c *codec) seal(body []byte) []byte {
	out := make([]byte, 0, len(wirePrefix)+macText+1+len(body))
	out = append(out, wirePrefix...)
	out = base64.RawURLEncoding.AppendEncode(out, c.mac(body))
	out = append(out, '.')
	return append(out, body...)
}

// open checks a message from the bus and decodes its event. The order is
// the cheap checks first, and nothing unauthenticated reaches the JSON
// decoder: size, framing, signature, then the event itself.
func (c *codec) open(payload string) (events.Event, error) {
	if len(payload) > c.max {
		return events.Event{}, errOversized
	}
	rest, ok := strings.CutPrefix(payload, wirePrefix)
	if !ok || len(rest) <= macText || rest[macText] != '.' {
		return events.Event{}, errUnsigned
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(rest[:macText])
	if err != nil {
		return events.Event{}, errUnsigned
	}
	body := []byte(rest[macText+1:])
	if !hmac.Equal(got, c.mac(body)) {
		return events.Event{}, errBadMAC
	}
	var ev events.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return events.Event{}, errNotEvent
	}
	if err := validate(ev); err != nil {
		return events.Event{}, err
	}
	return ev, nil
}

// validate refuses events no client should see. Publish applies it before
// sending and receivers after verifying the signature, so a bug in one
// instance cannot push a malformed event to another's clients either.
func validate(ev events.Event) error {
	switch {
	case ev.ID == "":
		return errors.New("event has no id")
	case ev.Type == "":
		return errors.New("event has no type")
	case !ev.Type.Known():
		return errors.New("unknown event type")
	case ev.BookID <= 0:
		return errors.New("book_id is not positive")
	case !objectOrNull(ev.Book):
		return errors.New("book is neither a JSON object nor null")
	}
	return nil
}

// objectOrNull reports whether raw is absent, null or starts an object;
// that it is valid JSON is checked by the encoder (publish) or the decoder
// that produced it (receive).
func objectOrNull(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) == 0 || raw[0] == '{' || bytes.Equal(bytes.TrimRight(raw, " \t\r\n"), []byte("null"))
}

// refusalLogEvery limits refusal reports to one per interval per bus, so
// that a flood of forged messages cannot flood the log; each refusal is
// still counted through Options.OnError.
const refusalLogEvery = 10 * time.Second

// refusals rate-limits the log lines of refused messages.
type refusals struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// refuse counts one refused message and logs it, or only counts it when
// a report went out less than refusalLogEvery ago.
func (b *Bus) refuse(size int, reason error) {
	b.onError(OpRejected)
	b.refused.mu.Lock()
	now := time.Now()
	if !b.refused.last.IsZero() && now.Sub(b.refused.last) < refusalLogEvery {
		b.refused.skipped++
		b.refused.mu.Unlock()
		return
	}
	skipped := b.refused.skipped
	b.refused.last, b.refused.skipped = now, 0
	b.refused.mu.Unlock()
	b.log.LogAttrs(context.Background(), slog.LevelWarn, "redisbus: refused a message from the bus",
		slog.String("channel", b.channel), slog.String("reason", reason.Error()),
		slog.Int("bytes", size), slog.Int("also_refused_since_last_report", skipped))
}
