package hub_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

func TestNew(t *testing.T) {
	ok := func(o *hub.Options) {}
	tests := []struct {
		name    string
		modify  func(*hub.Options)
		wantErr string
	}{
		{"OK", ok, ""},
		{"ErrMissingAuthenticate", func(o *hub.Options) { o.Authenticate = nil }, "Authenticate"},
		{"ErrMissingValidChannel", func(o *hub.Options) { o.ValidChannel = nil }, "ValidChannel"},
		{"ErrNegativeQueue", func(o *hub.Options) { o.SendQueueMessages = -1 }, "negative"},
		{"ErrNegativeTimeout", func(o *hub.Options) { o.WriteTimeout = -time.Second }, "negative"},
		{"OKNegativeMaxConnsPerSubjectIsNoCap", func(o *hub.Options) { o.MaxConnsPerSubject = -1 }, ""},
		{"ErrBadOriginPattern", func(o *hub.Options) { o.OriginPatterns = []string{"ok.example", "[bad"} }, "[bad"},
		{"ErrNegativeHistoryTimeout", func(o *hub.Options) { o.HistoryTimeout = -time.Second }, "negative"},
		{"ErrNegativeReauthenticateTimeout", func(o *hub.Options) { o.ReauthenticateTimeout = -time.Second }, "negative"},
		{"OKNegativeExpiryWarningDisables", func(o *hub.Options) { o.ExpiryWarning = -1 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := hub.Options{Authenticate: authenticate, ValidChannel: validChannel}
			tt.modify(&o)
			_, err := hub.New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestUpgradeRefused(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.MaxSubscriptions = 2 })
	alice := http.Header{"Authorization": {"Bearer alice"}}
	tests := []struct {
		name       string
		header     http.Header
		query      string
		wantStatus int
		wantSlug   string
	}{
		{"UnauthorizedWithoutToken", nil, "", http.StatusUnauthorized, "unauthorized"},
		{"UnauthorizedWithRejectedToken", http.Header{"Authorization": {"Bearer forged"}}, "", http.StatusUnauthorized, "unauthorized"},
		{"UnauthorizedWithRejectedQueryToken", nil, "token=forged", http.StatusUnauthorized, "unauthorized"},
		{"BadRequestUnknownChannel", alice, "subscribe=authors", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestBookZero", alice, "subscribe=books:0", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestEmptyItem", alice, "subscribe=books,", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestEmptyValue", alice, "subscribe=", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestOneBadInRepeat", alice, "subscribe=books&subscribe=nope", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestTooMany", alice, "subscribe=books:1,books:2,books:3", http.StatusBadRequest, "invalid-parameter"},
		{"BadRequestTooManyAcrossValues", alice, "subscribe=books:1&subscribe=books:2&subscribe=books:3", http.StatusBadRequest, "invalid-parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.url
			if tt.query != "" {
				u += "?" + tt.query
			}
			ws, resp, err := websocket.Dial(testContext(t), u, &websocket.DialOptions{HTTPHeader: tt.header})
			if err == nil {
				ws.CloseNow()
				t.Fatal("dial succeeded, want a refusal before the upgrade")
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			p := checkProblem(t, resp, body, tt.wantStatus, tt.wantSlug)
			if tt.wantStatus == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.wantSlug == "invalid-parameter" && (len(p.Errors) != 1 || p.Errors[0].Field != "subscribe" || p.Errors[0].Message == "") {
				t.Errorf("errors = %+v, want one naming subscribe", p.Errors)
			}
		})
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	if e.obs.connected != 0 {
		t.Errorf("observer saw %d connections, want none", e.obs.connected)
	}
}

func TestWelcome(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("OKHeaderToken", func(t *testing.T) {
		c := e.dialToken(t, "alice", "", nil)
		m := c.expectType("welcome")
		if m["instance"] != "test-1" || m["sub"] != "alice" || m["role"] != "viewer" {
			t.Fatalf("welcome = %v", m)
		}
		exp, err := time.Parse(time.RFC3339, m["expires_at"].(string))
		if err != nil || time.Until(exp) < 50*time.Minute {
			t.Fatalf("expires_at = %v (%v), want about an hour from now", m["expires_at"], err)
		}
	})
	t.Run("OKQueryToken", func(t *testing.T) {
		ws, _, err := websocket.Dial(testContext(t), e.url+"?token=alice", nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		(&client{t: t, ws: ws}).expectType("welcome")
	})
	t.Run("OKSubscribeAtConnect", func(t *testing.T) {
		c := e.dialToken(t, "alice", "subscribe=books,books:42&subscribe=books:7,books", nil)
		c.expectType("welcome")
		c.expectJSON(`{"type":"subscribed","channel":"books"}`)
		c.expectJSON(`{"type":"subscribed","channel":"books:42"}`)
		c.expectJSON(`{"type":"subscribed","channel":"books:7"}`)
		c.sync()
		e.hub.Publish(pub(bookChannels(7), bookEvent(7)))
		if m := c.expectType("event"); m["channel"] != "books" {
			t.Fatalf("first event on %v, want books", m["channel"])
		}
		if m := c.expectType("event"); m["channel"] != "books:7" {
			t.Fatalf("second event on %v, want books:7", m["channel"])
		}
	})
}

func TestSubscribe(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	c.roundTrip(`{"type":"subscribe","channel":"books"}`, `{"type":"subscribed","channel":"books"}`)
	t.Run("OKIdempotent", func(t *testing.T) {
		c.roundTrip(`{"type":"subscribe","channel":"books"}`, `{"type":"subscribed","channel":"books"}`)
		if s := e.hub.Stats(); s.Subscriptions != 1 || s.Channels != 1 {
			t.Fatalf("Stats = %+v, want one subscription on one channel", s)
		}
	})
	t.Run("OKUnsubscribeStopsDelivery", func(t *testing.T) {
		c.roundTrip(`{"type":"unsubscribe","channel":"books"}`, `{"type":"unsubscribed","channel":"books"}`)
		e.hub.Publish(pub(bookChannels(1), bookEvent(1)))
		c.sync() // the pong comes first: no event was queued
		if s := e.hub.Stats(); s.Subscriptions != 0 || s.Channels != 0 {
			t.Fatalf("Stats = %+v, want empty index", s)
		}
	})
}

func TestIDEcho(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	tests := []struct {
		name string
		send string
		want string
	}{
		{"StringOnPing", `{"type":"ping","id":"a-1"}`, `{"type":"pong","id":"a-1"}`},
		{"NumberOnPing", `{"type":"ping","id":17}`, `{"type":"pong","id":17}`},
		{"NegativeFloat", `{"type":"ping","id":-2.5}`, `{"type":"pong","id":-2.5}`},
		{"NullIsAbsent", `{"type":"ping","id":null}`, `{"type":"pong"}`},
		{"OnSubscribe", `{"type":"subscribe","channel":"books:3","id":"s"}`, `{"type":"subscribed","channel":"books:3","id":"s"}`},
		{"OnUnsubscribe", `{"type":"unsubscribe","channel":"books:3","id":4}`, `{"type":"unsubscribed","channel":"books:3","id":4}`},
		{"OnError", `{"type":"jump","id":"e"}`, `{"type":"error","id":"e","code":"unknown_type","message":"type must be \"subscribe\", \"unsubscribe\", \"ping\" or \"refresh\""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { c.roundTrip(tt.send, tt.want) })
	}
}

func TestErrorCodes(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.MaxSubscriptions = 2 })
	c := e.dial(t, "")
	tests := []struct {
		name, send, code string
	}{
		{"BadJSONNotJSON", `not json`, "bad_json"},
		{"BadJSONArray", `[1,2]`, "bad_json"},
		{"BadJSONTypeNotString", `{"type":5}`, "bad_json"},
		{"BadJSONObjectID", `{"type":"ping","id":{"a":1}}`, "bad_json"},
		{"BadJSONBoolID", `{"type":"ping","id":true}`, "bad_json"},
		{"UnknownType", `{"type":"publish","channel":"books"}`, "unknown_type"},
		{"UnknownTypeMissing", `{}`, "unknown_type"},
		{"MissingChannel", `{"type":"subscribe"}`, "missing_channel"},
		{"MissingChannelEmpty", `{"type":"unsubscribe","channel":""}`, "missing_channel"},
		{"UnknownChannel", `{"type":"subscribe","channel":"authors"}`, "unknown_channel"},
		{"UnknownChannelBookZero", `{"type":"subscribe","channel":"books:0"}`, "unknown_channel"},
		{"UnknownChannelOnUnsubscribe", `{"type":"unsubscribe","channel":"books:x"}`, "unknown_channel"},
		{"NotSubscribed", `{"type":"unsubscribe","channel":"books:9"}`, "not_subscribed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendText(tt.send)
			m := c.expectType("error")
			if m["code"] != tt.code || m["message"] == "" {
				t.Fatalf("error frame %v, want code %q with a message", m, tt.code)
			}
			c.sync() // the connection still works
		})
	}
	t.Run("TooManySubscriptions", func(t *testing.T) {
		c.roundTrip(`{"type":"subscribe","channel":"books:1"}`, `{"type":"subscribed","channel":"books:1"}`)
		c.roundTrip(`{"type":"subscribe","channel":"books:2"}`, `{"type":"subscribed","channel":"books:2"}`)
		c.sendText(`{"type":"subscribe","channel":"books:3","id":1}`)
		if m := c.expectType("error"); m["code"] != "too_many_subscriptions" || m["id"] != 1.0 {
			t.Fatalf("error frame %v, want too_many_subscriptions with id 1", m)
		}
		// Re-subscribing an existing channel is not a new subscription.
		c.roundTrip(`{"type":"subscribe","channel":"books:2"}`, `{"type":"subscribed","channel":"books:2"}`)
		c.sync()
	})
	t.Run("BinaryUnsupported", func(t *testing.T) {
		if err := c.ws.Write(testContext(t), websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatalf("write binary: %v", err)
		}
		if m := c.expectType("error"); m["code"] != "binary_unsupported" {
			t.Fatalf("error frame %v, want binary_unsupported", m)
		}
		c.sync()
	})
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "")
	c.sync()
	big := `{"type":"ping","id":"` + strings.Repeat("x", hub.DefaultReadLimit) + `"}`
	// The server may close before the whole message is written.
	_ = c.ws.Write(testContext(t), websocket.MessageText, []byte(big))
	c.expectClose(websocket.StatusMessageTooBig, "")
	if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonMessageTooBig {
		t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonMessageTooBig)
	}
}

func TestTokenExpiryClosesWith3000(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dialToken(t, "short-500", "subscribe=books", nil)
	c.expectType("welcome")
	c.expectType("token_expiring") // less than ExpiryWarning left at connect
	c.expectType("subscribed")
	c.expectClose(3000, "token expired")
	if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonTokenExpired {
		t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonTokenExpired)
	}
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats after expiry = %+v, want zero", s)
	}
}

func TestWebSocketPing(t *testing.T) {
	t.Run("OKAnsweredPingsKeepTheConnection", func(t *testing.T) {
		e := newEnv(t, func(o *hub.Options) { o.PingInterval = 20 * time.Millisecond })
		pinged := make(chan struct{}, 10)
		c := e.dialToken(t, "alice", "", &websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool {
				select {
				case pinged <- struct{}{}:
				default:
				}
				return true
			},
		})
		c.expectType("welcome")
		// Pings are answered only while the client reads.
		ctx, cancel := context.WithCancel(testContext(t))
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			for {
				if _, _, err := c.ws.Read(ctx); err != nil {
					return
				}
			}
		}()
		t.Cleanup(func() { cancel(); <-readerDone })
		timeout := time.After(testTimeout)
		for range 3 {
			select {
			case <-pinged:
			case <-timeout:
				t.Fatal("server did not ping three times")
			}
		}
		if s := e.hub.Stats(); s.Connections != 1 {
			t.Fatalf("Stats = %+v, want the pinged connection alive", s)
		}
	})
	t.Run("ErrUnansweredPingCloses", func(t *testing.T) {
		e := newEnv(t, func(o *hub.Options) {
			o.PingInterval = 20 * time.Millisecond
			o.WriteTimeout = 100 * time.Millisecond
		})
		c := e.dialToken(t, "alice", "", nil) // never reads, so never answers
		if got := e.obs.waitDisconnects(t, 1); got[0] != hub.ReasonPingTimeout {
			t.Fatalf("disconnect reason %q, want %q", got[0], hub.ReasonPingTimeout)
		}
		_, _, err := c.ws.Read(testContext(t))
		for err == nil {
			_, _, err = c.ws.Read(testContext(t))
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("socket still open after ping timeout: %v", err)
		}
	})
}

func TestClientCloseCleansUp(t *testing.T) {
	e := newEnv(t, nil)
	const n = 5
	for i := range n {
		c := e.dial(t, "subscribe=books,books:"+strconv.Itoa(i+1))
		c.expectType("subscribed")
		c.expectType("subscribed")
		if i%2 == 0 {
			c.ws.Close(websocket.StatusNormalClosure, "bye")
		} else {
			c.ws.CloseNow()
		}
	}
	reasons := e.obs.waitDisconnects(t, n)
	for _, r := range reasons {
		if r != hub.ReasonClientClosed && r != hub.ReasonConnectionLost {
			t.Errorf("disconnect reason %q, want client_closed or connection_lost", r)
		}
	}
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats after disconnects = %+v, want zero", s)
	}
}
