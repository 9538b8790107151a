package hub_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// credential is one token of a credentials table: its identity, and a
// lifetime from the moment it is presented (0: never expires).
type credential struct {
	id  hub.Identity
	ttl time.Duration
}

// credentials is a test token store; it is only read once the hub runs.
type credentials map[string]credential

func (cs credentials) lookup(tok string) (hub.Identity, error) {
	cr, ok := cs[tok]
	if !ok {
		return hub.Identity{}, errors.New("unknown token") // never the token itself
	}
	id := cr.id
	if cr.ttl != 0 {
		id.ExpiresAt = time.Now().Add(cr.ttl)
	}
	return id, nil
}

func (cs credentials) authenticate(r *http.Request) (hub.Identity, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return cs.lookup(tok)
}

func (cs credentials) reauthenticate(_ context.Context, tok string) (hub.Identity, error) {
	return cs.lookup(tok)
}

// authorizeRoles lets the role "restricted" subscribe to single books only.
func authorizeRoles(id hub.Identity, channel string) bool {
	return id.Role != "restricted" || channel != "books"
}

// withCredentials configures authentication, refresh and authorization
// from cs, then applies more.
func withCredentials(cs credentials, more ...func(*hub.Options)) func(*hub.Options) {
	return func(o *hub.Options) {
		o.Authenticate = cs.authenticate
		o.Reauthenticate = cs.reauthenticate
		o.Authorize = authorizeRoles
		for _, m := range more {
			m(o)
		}
	}
}

func viewer(sub string) hub.Identity { return hub.Identity{Subject: sub, Role: "viewer"} }

func restricted(sub string) hub.Identity { return hub.Identity{Subject: sub, Role: "restricted"} }

func withVariant(id hub.Identity, v string) hub.Identity { id.Variant = v; return id }

// refreshMsg is a refresh message with id "r".
func refreshMsg(token string) string {
	return `{"type":"refresh","id":"r","token":"` + token + `"}`
}

// expectRefreshed reads the refreshed reply and returns its expires_at.
func (c *client) expectRefreshed() string {
	c.t.Helper()
	m := c.expectType("refreshed")
	if m["id"] != "r" {
		c.t.Fatalf("refreshed %v, want id r", m)
	}
	exp, _ := m["expires_at"].(string)
	return exp
}

func (c *client) expectError(code string) {
	c.t.Helper()
	if m := c.expectType("error"); m["code"] != code || m["message"] == "" {
		c.t.Fatalf("got %v, want error %s with a message", m, code)
	}
}

func TestAuthorizeHandshake(t *testing.T) {
	cs := credentials{"r": {id: restricted("rita")}, "v": {id: viewer("vic")}}
	e := newEnv(t, withCredentials(cs))
	tests := []struct {
		name, token, query string
		wantStatus         int
	}{
		{"ForbiddenAllBooks", "r", "subscribe=books", http.StatusForbidden},
		{"ForbiddenInAList", "r", "subscribe=books:1,books", http.StatusForbidden},
		{"ForbiddenInARepeat", "r", "subscribe=books:1&subscribe=books", http.StatusForbidden},
		{"OKSingleBook", "r", "subscribe=books:1", http.StatusSwitchingProtocols},
		{"OKViewer", "v", "subscribe=books", http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := websocket.Dial(testContext(t), e.url+"?"+tt.query,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tt.token}}})
			if tt.wantStatus == http.StatusSwitchingProtocols {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				ws.CloseNow()
				return
			}
			if err == nil {
				ws.CloseNow()
				t.Fatal("dial succeeded, want 403")
			}
			body, _ := io.ReadAll(resp.Body)
			p := checkProblem(t, resp, body, http.StatusForbidden, "forbidden-channel")
			if !strings.Contains(p.Detail, `"books"`) || len(p.Errors) != 1 || p.Errors[0].Field != "subscribe" ||
				!strings.Contains(p.Errors[0].Message, `"books"`) {
				t.Fatalf("problem %+v, want the channel named in detail and errors", p)
			}
		})
	}
}

func TestAuthorizeSubscribeMessage(t *testing.T) {
	var mu sync.Mutex
	var seen []hub.Identity
	cs := credentials{"r": {id: hub.Identity{Subject: "rita", Role: "restricted", Session: "s1", Generation: 3, Variant: "public"}}}
	e := newEnv(t, withCredentials(cs, func(o *hub.Options) {
		o.Authorize = func(id hub.Identity, ch string) bool {
			mu.Lock()
			seen = append(seen, id)
			mu.Unlock()
			return authorizeRoles(id, ch)
		}
	}))
	c := e.dialToken(t, "r", "", nil)
	c.expectType("welcome")
	c.roundTrip(`{"type":"subscribe","channel":"books","id":1}`,
		`{"type":"error","id":1,"code":"forbidden_channel","message":"this token may not subscribe to this channel"}`)
	c.roundTrip(`{"type":"subscribe","channel":"books:7"}`, `{"type":"subscribed","channel":"books:7"}`)
	// Unsubscribing never needs authorization; an invalid channel is
	// refused before Authorize is asked.
	c.roundTrip(`{"type":"unsubscribe","channel":"books"}`, `{"type":"error","code":"not_subscribed","message":"not subscribed to this channel"}`)
	c.sendText(`{"type":"subscribe","channel":"authors"}`)
	c.expectError("unknown_channel")

	e.hub.Publish(pub(bookChannels(7), bookEvent(7)))
	if m := c.expectType("event"); m["channel"] != "books:7" {
		t.Fatalf("got %v, want only the books:7 event", m)
	}
	c.sync()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != cs["r"].id {
		t.Fatalf("Authorize saw %+v, want the full identity twice", seen)
	}
}

func TestTokenExpiring(t *testing.T) {
	t.Run("OKWarnedBeforeExpiry", func(t *testing.T) {
		const warning = 300 * time.Millisecond
		cs := credentials{"t": {id: viewer("tom"), ttl: 800 * time.Millisecond}}
		e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ExpiryWarning = warning }))
		dialed := time.Now() // the token's life starts later, in Authenticate
		c := e.dialToken(t, "t", "subscribe=books", nil)
		w := c.expectType("welcome")
		c.expectType("subscribed")
		m := c.expectType("token_expiring")
		// Timers never fire early: not before ttl-warning into the life.
		if d := time.Since(dialed); d < 800*time.Millisecond-warning {
			t.Fatalf("warned %v after dialing, want at least %v", d, 800*time.Millisecond-warning)
		}
		if m["expires_at"] != w["expires_at"] || m["expires_in"] != 0.0 {
			t.Fatalf("token_expiring %v, want expires_at %v and expires_in 0", m, w["expires_at"])
		}
		// Warned once: the next thing is the close.
		c.expectClose(3000, "token expired")
	})
	t.Run("OKAtConnectRightAfterWelcome", func(t *testing.T) {
		cs := credentials{"t": {id: viewer("tom"), ttl: 30 * time.Second}}
		e := newEnv(t, withCredentials(cs))
		c := e.dialToken(t, "t", "subscribe=books", nil)
		c.expectType("welcome")
		m := c.expectType("token_expiring")
		if in := m["expires_in"].(float64); in < 25 || in > 30 {
			t.Fatalf("expires_in %v, want about 30", in)
		}
		c.expectType("subscribed")
		c.sync()
	})
	t.Run("OKNeverExpiringNeverWarned", func(t *testing.T) {
		cs := credentials{"t": {id: viewer("tom")}}
		e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ExpiryWarning = time.Hour }))
		c := e.dialToken(t, "t", "", nil)
		c.expectType("welcome")
		c.sync()
	})
	t.Run("OKNegativeDisables", func(t *testing.T) {
		cs := credentials{"t": {id: viewer("tom"), ttl: 300 * time.Millisecond}}
		e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ExpiryWarning = -1 }))
		c := e.dialToken(t, "t", "", nil)
		c.expectType("welcome")
		_, b, err := c.ws.Read(testContext(t))
		if websocket.CloseStatus(err) != 3000 {
			t.Fatalf("read %s, %v; want the 3000 close and no warning", b, err)
		}
	})
}

func TestRefresh(t *testing.T) {
	cs := credentials{
		"short":   {id: viewer("tom"), ttl: time.Second},
		"short2":  {id: viewer("tom"), ttl: time.Second},
		"long":    {id: viewer("tom"), ttl: time.Hour},
		"forever": {id: viewer("tom")},
		"other":   {id: viewer("ann"), ttl: time.Hour},
		"huge":    {id: viewer("tom"), ttl: time.Hour},
	}
	// A bearer JWT with many claims is a few hundred bytes to 2 KB; 3.5 KB
	// plus the envelope must still fit in the default ReadLimit.
	bigToken := strings.Repeat("eyJhbGciOiJFZERTQSJ9.", 170)[:3500]
	cs[bigToken] = credential{id: viewer("tom"), ttl: time.Hour}

	t.Run("OKSurvivesTheOldExpiry", func(t *testing.T) {
		e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ExpiryWarning = 100 * time.Millisecond }))
		c := e.dialToken(t, "short", "subscribe=books", nil)
		c.expectType("welcome")
		c.expectType("subscribed")
		c.sendText(refreshMsg("long"))
		exp, err := time.Parse(time.RFC3339, c.expectRefreshed())
		if err != nil || time.Until(exp) < 59*time.Minute {
			t.Fatalf("refreshed expires_at %v (%v), want an hour from now", exp, err)
		}
		// A socket opened after the first with the same lifetime expires
		// after the first one's old expiry: its close is the signal.
		witness := e.dialToken(t, "short2", "", nil)
		witness.expectType("welcome")
		witness.expectType("token_expiring")
		witness.expectClose(3000, "token expired")
		c.sync()
		e.hub.Publish(pub([]string{"books"}, bookEvent(1)))
		c.expectType("event")
	})
	t.Run("OKNeverExpiring", func(t *testing.T) {
		e := newEnv(t, withCredentials(cs))
		c := e.dialToken(t, "long", "", nil)
		c.expectType("welcome")
		c.sendText(refreshMsg("forever"))
		if exp := c.expectRefreshed(); exp != "" {
			t.Fatalf("expires_at %q, want none", exp)
		}
		c.sync()
	})
	t.Run("OKWarningRearms", func(t *testing.T) {
		cs := credentials{
			"a": {id: viewer("tom"), ttl: time.Second},
			"b": {id: viewer("tom"), ttl: 2500 * time.Millisecond},
		}
		e := newEnv(t, withCredentials(cs, func(o *hub.Options) { o.ExpiryWarning = 900 * time.Millisecond }))
		c := e.dialToken(t, "a", "", nil)
		c.expectType("welcome")
		c.expectType("token_expiring")
		c.sendText(refreshMsg("b"))
		exp := c.expectRefreshed()
		second := c.expectType("token_expiring")
		if second["expires_at"] != exp {
			t.Fatalf("second warning %v, want one for the refreshed expiry %s", second, exp)
		}
		c.expectClose(3000, "token expired")
	})
	t.Run("OKTokenAtTheEdgeOfReadLimit", func(t *testing.T) {
		e := newEnv(t, withCredentials(cs))
		c := e.dialToken(t, "long", "", nil)
		c.expectType("welcome")
		msg := refreshMsg(bigToken)
		if len(msg) > hub.DefaultReadLimit {
			t.Fatalf("message of %d bytes exceeds the read limit", len(msg))
		}
		c.sendText(msg)
		c.expectRefreshed()
	})

	refusals := []struct {
		name, msg, code string
		unsupported     bool
	}{
		{"ErrUnsupported", refreshMsg("long"), "refresh_unsupported", true},
		{"ErrInvalidToken", refreshMsg("forged-secret-token"), "invalid_token", false},
		{"ErrMissingToken", `{"type":"refresh","id":"r"}`, "invalid_token", false},
		{"ErrEmptyToken", refreshMsg(""), "invalid_token", false},
		{"ErrTokenNotString", `{"type":"refresh","id":"r","token":5}`, "bad_json", false},
		{"ErrSubjectMismatch", refreshMsg("other"), "subject_mismatch", false},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			e := newEnv(t, withCredentials(cs, func(o *hub.Options) {
				o.ExpiryWarning = -1
				o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tt.unsupported {
					o.Reauthenticate = nil
				}
			}))
			c := e.dialToken(t, "short", "", nil)
			c.expectType("welcome")
			c.sendText(tt.msg)
			m := c.expectType("error")
			if m["code"] != tt.code || m["message"] == "" {
				t.Fatalf("got %v, want error %s", m, tt.code)
			}
			// The socket keeps its old token: it expires on time.
			c.expectClose(3000, "token expired")
			e.obs.waitDisconnects(t, 1)
			if strings.Contains(logs.String(), "forged-secret-token") {
				t.Fatalf("the token reached the logs:\n%s", logs.String())
			}
		})
	}
}

func TestRefreshSwitchesVariant(t *testing.T) {
	cs := credentials{
		"pub":   {id: withVariant(viewer("tom"), "public")},
		"staff": {id: withVariant(viewer("tom"), "staff")},
	}
	e := newEnv(t, withCredentials(cs))
	c := e.dialToken(t, "pub", "subscribe=books", nil)
	c.expectType("welcome")
	c.expectType("subscribed")
	p := hub.Publication{Data: []byte(`{"v":"default"}`), Variants: map[string][]byte{"staff": []byte(`{"v":"staff"}`)},
		Positions: []hub.Position{{Channel: "books"}}}
	e.hub.Publish(p)
	c.expectJSON(`{"type":"event","channel":"books","v":"default"}`)
	c.roundTrip(refreshMsg("staff"), `{"type":"refreshed","id":"r"}`)
	e.hub.Publish(p)
	c.expectJSON(`{"type":"event","channel":"books","v":"staff"}`)
	c.roundTrip(refreshMsg("pub"), `{"type":"refreshed","id":"r"}`)
	e.hub.Publish(p)
	c.expectJSON(`{"type":"event","channel":"books","v":"default"}`)
}

func TestRefreshDropsForbiddenChannels(t *testing.T) {
	cs := credentials{"v": {id: viewer("tom")}, "r": {id: restricted("tom")}}
	e := newEnv(t, withCredentials(cs))
	c := e.dialToken(t, "v", "subscribe=books,books:1", nil)
	c.expectType("welcome")
	c.expectType("subscribed")
	c.expectType("subscribed")
	c.sendText(refreshMsg("r"))
	c.expectRefreshed()
	c.expectJSON(`{"type":"unsubscribed","channel":"books","code":"forbidden_channel"}`)
	if s := e.hub.Stats(); s.Subscriptions != 1 {
		t.Fatalf("Stats %+v, want books:1 only", s)
	}
	e.hub.Publish(pub(bookChannels(1), bookEvent(1)))
	if m := c.expectType("event"); m["channel"] != "books:1" {
		t.Fatalf("got %v, want the books:1 event only", m)
	}
	c.sync()
	// The new identity is the one subscriptions are checked against.
	c.sendText(`{"type":"subscribe","channel":"books"}`)
	c.expectError("forbidden_channel")
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
