package redisbus_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/events/redisbus"
	"github.com/bookhub/bookhub/internal/testenv"
)

// sign builds a message the way the package doc specifies, without the
// package's help, so these tests also pin the documented wire format.
func sign(key []byte, channel, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("v1.\x00" + channel + "\x00" + body))
	return "v1." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "." + body
}

// eventJSON is ev as a publisher would encode it.
func eventJSON(t testing.TB, ev events.Event) string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rawClient is a plain go-redis client of url: an attacker, or a careless
// neighbour, publishing straight on the channel. Closed when t ends.
func rawClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// counter counts one OnError op and signals each occurrence.
type counter struct {
	op     string
	n      atomic.Int64
	notify chan struct{}
}

func newCounter(op string) *counter { return &counter{op: op, notify: make(chan struct{}, 1)} }

func (c *counter) onError(op string) {
	if op != c.op {
		return
	}
	c.n.Add(1)
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Every kind of message a receiver must refuse. Each case gets its own bus,
// so that each reason reaches the (rate-limited) log.
func TestRefusesForgedAndInvalidMessages(t *testing.T) {
	url := testenv.Redis(t)
	raw := rawClient(t, url)
	const secret = "do-not-log-this-body"
	otherKey := redisbus.DeriveSigningKey([]byte("another deployment's secret, 0123456789"))
	// forged is what the probe sent: a made-up type from a made-up origin.
	forged := `{"id":"` + secret + `","event":"book.hacked","book_id":1,"book":{"title":"pwned"},"at":"2025-01-01T00:00:00Z","origin":"evil"}`
	valid := func(mod func(*events.Event)) func(t testing.TB) string {
		return func(t testing.TB) string {
			ev := testEvent(1)
			ev.Origin = secret
			if mod != nil {
				mod(&ev)
			}
			return eventJSON(t, ev)
		}
	}
	tests := []struct {
		name string
		// payload builds what is published on channel.
		payload  func(t testing.TB, channel string) string
		maxBytes int
		reason   string // substring of the logged reason
	}{
		{"ErrUnsigned", func(testing.TB, string) string { return forged }, 0, "not a signed"},
		{"ErrGarbage", func(testing.TB, string) string { return "not json " + secret }, 0, "not a signed"},
		{"ErrEmpty", func(testing.TB, string) string { return "" }, 0, "not a signed"},
		{"ErrBadMACEncoding", func(t testing.TB, ch string) string {
			return "v1." + strings.Repeat("!", 43) + "." + valid(nil)(t)
		}, 0, "not a signed"},
		{"ErrWrongKey", func(t testing.TB, ch string) string { return sign(otherKey, ch, valid(nil)(t)) }, 0, "signature"},
		{"ErrTampered", func(t testing.TB, ch string) string {
			msg := sign(testKey, ch, valid(nil)(t))
			return strings.Replace(msg, `"book_id":1`, `"book_id":2`, 1)
		}, 0, "signature"},
		{"ErrSignedForAnotherChannel", func(t testing.TB, ch string) string {
			return sign(testKey, "elsewhere:{books}:events", valid(nil)(t))
		}, 0, "signature"},
		{"ErrSignedForgedType", func(t testing.TB, ch string) string { return sign(testKey, ch, forged) }, 0, "unknown event type"},
		{"ErrSignedNoID", func(t testing.TB, ch string) string {
			return sign(testKey, ch, valid(func(ev *events.Event) { ev.ID = "" })(t))
		}, 0, "no id"},
		{"ErrSignedBookIDZero", func(t testing.TB, ch string) string {
			return sign(testKey, ch, valid(func(ev *events.Event) { ev.BookID = 0 })(t))
		}, 0, "book_id"},
		{"ErrSignedBookNotObject", func(t testing.TB, ch string) string {
			return sign(testKey, ch, valid(func(ev *events.Event) { ev.Book = json.RawMessage(`"` + secret + `"`) })(t))
		}, 0, "neither a JSON object nor null"},
		{"ErrSignedNotJSON", func(t testing.TB, ch string) string { return sign(testKey, ch, "not json "+secret) }, 0, "not an event"},
		// The probe's 8 MB event, unsigned: refused on its size alone.
		{"ErrOversized", func(testing.TB, string) string {
			return `{"id":"x","event":"book.created","book_id":1,"book":{"title":"` + strings.Repeat(secret, 8<<20/len(secret)) + `"}}`
		}, 0, "larger than MaxMessageBytes"},
		// Signed and otherwise valid, but over the receiver's cap: the size
		// is checked before the signature.
		{"ErrSignedOversized", func(t testing.TB, ch string) string {
			return sign(testKey, ch, valid(func(ev *events.Event) {
				ev.Book = json.RawMessage(`{"title":"` + strings.Repeat("x", 4096) + `"}`)
			})(t))
		}, 4096, "larger than MaxMessageBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			logs := &testenv.LogBuffer{}
			refused := newCounter(redisbus.OpRejected)
			b := newBus(t, redisbus.Options{URL: url, Prefix: testenv.Prefix(t), Logger: logs.Logger(),
				OnError: refused.onError, MaxMessageBytes: tt.maxBytes})
			r := newRecorder()
			if err := b.Subscribe(ctx, r.handle); err != nil {
				t.Fatal(err)
			}
			payload := tt.payload(t, b.Channel())
			if err := raw.Publish(ctx, b.Channel(), payload).Err(); err != nil {
				t.Fatal(err)
			}
			// Redis delivers in publish order: once a valid event published
			// afterwards is in, the refused one would have arrived before it.
			good := testEvent(7)
			if err := b.Publish(ctx, good); err != nil {
				t.Fatal(err)
			}
			if got := r.waitForID(ctx, t, good.ID); len(got) != 1 {
				t.Errorf("handler got %d events, want only the valid one: %v", len(got), ids(got))
			}
			if n := refused.n.Load(); n != 1 {
				t.Errorf("OnError(%q) called %d times, want 1", redisbus.OpRejected, n)
			}
			out := logs.String()
			if !strings.Contains(out, "refused a message from the bus") || !strings.Contains(out, tt.reason) ||
				!strings.Contains(out, "bytes="+strconv.Itoa(len(payload))) {
				t.Errorf("log does not report the refusal with reason %q and size %d:\n%s", tt.reason, len(payload), out)
			}
			if strings.Contains(out, secret) || strings.Contains(out, "pwned") {
				t.Errorf("log contains the payload:\n%.2000s", out)
			}
		})
	}
}

// A flood of forged messages is counted one by one but logged once per
// interval.
func TestRefusalsAreCountedAndTheirLogRateLimited(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	url := testenv.Redis(t)
	logs := &testenv.LogBuffer{}
	refused := newCounter(redisbus.OpRejected)
	b := newBus(t, redisbus.Options{URL: url, Prefix: testenv.Prefix(t), Logger: logs.Logger(), OnError: refused.onError})
	r := newRecorder()
	if err := b.Subscribe(ctx, r.handle); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, url)
	const n = 200
	pipe := raw.Pipeline()
	for i := range n {
		pipe.Publish(ctx, b.Channel(), `{"id":"`+strconv.Itoa(i)+`","event":"book.hacked","book_id":1,"origin":"evil"}`)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	good := testEvent(1)
	if err := b.Publish(ctx, good); err != nil {
		t.Fatal(err)
	}
	if got := r.waitForID(ctx, t, good.ID); len(got) != 1 {
		t.Errorf("handler got %d events, want only the valid one", len(got))
	}
	if got := refused.n.Load(); got != n {
		t.Errorf("OnError(%q) called %d times, want %d", redisbus.OpRejected, got, n)
	}
	if got := logs.Count("refused a message from the bus"); got != 1 {
		t.Errorf("refusals logged %d times, want 1 (rate limited):\n%s", got, logs)
	}
}

// Instances that share the deployment secret derive the same key on their
// own and hear each other; an instance with another secret hears nothing
// from them, and they nothing from it.
func TestSameSecretInteroperatesOtherSecretDoesNot(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	prefix := testenv.Prefix(t)
	secretA := "the deployment's secret, at least 32 bytes long"
	a1Refused, outsiderRefused := newCounter(redisbus.OpRejected), newCounter(redisbus.OpRejected)
	// Each bus derives its key from its own copy of the secret, as separate
	// processes would.
	a1 := newBus(t, redisbus.Options{Prefix: prefix, SigningKey: redisbus.DeriveSigningKey([]byte(secretA)), OnError: a1Refused.onError})
	a2 := newBus(t, redisbus.Options{Prefix: prefix, SigningKey: redisbus.DeriveSigningKey([]byte(strings.Clone(secretA)))})
	outsider := newBus(t, redisbus.Options{Prefix: prefix, SigningKey: redisbus.DeriveSigningKey([]byte(secretA + "!")),
		OnError: outsiderRefused.onError})
	rA1, rOutsider := newRecorder(), newRecorder()
	if err := a1.Subscribe(ctx, rA1.handle); err != nil {
		t.Fatal(err)
	}
	if err := outsider.Subscribe(ctx, rOutsider.handle); err != nil {
		t.Fatal(err)
	}

	fromA2 := testEvent(1)
	if err := a2.Publish(ctx, fromA2); err != nil {
		t.Fatal(err)
	}
	rA1.waitForID(ctx, t, fromA2.ID)

	fromOutsider := testEvent(2)
	if err := outsider.Publish(ctx, fromOutsider); err != nil {
		t.Fatal(err)
	}
	// The outsider hears its own event, after (Redis keeps the order) the
	// one it had to refuse.
	if got := rOutsider.waitForID(ctx, t, fromOutsider.ID); containsID(got, fromA2.ID) {
		t.Errorf("a bus with another secret accepted an event: %v", ids(got))
	}
	if n := outsiderRefused.n.Load(); n != 1 {
		t.Errorf("outsider refused %d messages, want 1", n)
	}
	select {
	case <-a1Refused.notify:
	case <-ctx.Done():
		t.Fatal("the outsider's event was not refused by the deployment")
	}
	last := testEvent(3)
	if err := a2.Publish(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := rA1.waitForID(ctx, t, last.ID); containsID(got, fromOutsider.ID) || len(got) != 2 {
		t.Errorf("deployment got %v, want only its own two events", ids(got))
	}
}

func TestDeriveSigningKey(t *testing.T) {
	secret := []byte("the deployment's secret, at least 32 bytes long")
	key := redisbus.DeriveSigningKey(secret)
	t.Run("OKDeterministic", func(t *testing.T) {
		if again := redisbus.DeriveSigningKey(bytes.Clone(secret)); !bytes.Equal(key, again) {
			t.Errorf("two derivations from one secret differ: %x, %x", key, again)
		}
		if len(key) != redisbus.MinSigningKeyBytes {
			t.Errorf("key is %d bytes, want %d", len(key), redisbus.MinSigningKeyBytes)
		}
	})
	t.Run("OKIsHKDFSHA256", func(t *testing.T) {
		// RFC 5869 by hand: extract with an all-zero salt, expand one block
		// with the documented info string.
		ext := hmac.New(sha256.New, make([]byte, sha256.Size))
		ext.Write(secret)
		exp := hmac.New(sha256.New, ext.Sum(nil))
		exp.Write([]byte("bookhub bus v1\x01"))
		if want := exp.Sum(nil); !bytes.Equal(key, want) {
			t.Errorf("DeriveSigningKey = %x, want HKDF-SHA256 %x", key, want)
		}
	})
	t.Run("OKNotTheSecret", func(t *testing.T) {
		if bytes.Contains(key, secret[:16]) || bytes.Equal(key, secret[:len(key)]) {
			t.Error("the key reveals the secret")
		}
	})
	t.Run("OKOtherSecretOtherKey", func(t *testing.T) {
		if other := redisbus.DeriveSigningKey(append(bytes.Clone(secret), '!')); bytes.Equal(key, other) {
			t.Error("different secrets derive the same key")
		}
	})
	t.Run("ErrEmptySecret", func(t *testing.T) {
		if k := redisbus.DeriveSigningKey(nil); k != nil {
			t.Errorf("DeriveSigningKey(nil) = %x, want nil (which New refuses)", k)
		}
	})
}
