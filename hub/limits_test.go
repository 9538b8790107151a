package hub_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/hub"
)

// channelList is "books:1,books:2,...,books:<n>": n distinct valid channels.
// For n = 60,000 it is the ~700 KB list of the hostile probe.
func channelList(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("books:")
		b.WriteString(strconv.Itoa(i + 1))
	}
	return b.String()
}

func TestParseSubscribeBounded(t *testing.T) {
	var validated atomic.Int64
	h, err := hub.New(hub.Options{
		Authenticate: authenticate,
		ValidChannel: func(ch string) bool { validated.Add(1); return validChannel(ch) },
		Logger:       testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	hostile := channelList(60000)
	tests := []struct {
		name          string
		values        []string
		wantN         int
		wantErr       string
		wantValidated int64 // -1: any
	}{
		{"OKNone", nil, 0, "", 0},
		{"OKMaxDistinct", []string{channelList(hub.DefaultMaxSubscriptions)}, hub.DefaultMaxSubscriptions, "", -1},
		{"OKDuplicatesCollapse", []string{strings.Repeat("books,", 1000) + "books"}, 1, "", -1},
		{"OKSpreadOverValues", []string{"books:1", "books:2,books:1", "books:2"}, 2, "", -1},
		{"ErrOneTooMany", []string{channelList(hub.DefaultMaxSubscriptions + 1)}, 0, "more than 64", -1},
		{"ErrHostileOneValueBeforeAnyWork", []string{hostile}, 0, "longer than 8256 bytes", 0},
		{"ErrHostileManyValuesBeforeAnyWork", strings.Split(hostile, ","), 0, "longer than 8256 bytes", 0},
		{"ErrManyEmptyValuesBeforeAnyWork", make([]string, 60000), 0, "longer than", 0},
		{"ErrChannelTooLongNotValidated", []string{"books:" + strings.Repeat("1", hub.MaxChannelLen)}, 0, "unknown channel", 0},
		{"ErrInvalidUTF8Quoted", []string{"books:\xff"}, 0, `"books:\xff"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validated.Store(0)
			start := time.Now()
			got, err := h.ParseSubscribe(tt.values)
			// Generous even under -race on a busy machine; the quadratic
			// parser took seconds on the hostile input.
			if d := time.Since(start); d > 250*time.Millisecond {
				t.Errorf("ParseSubscribe took %v", d)
			}
			if tt.wantValidated >= 0 && validated.Load() != tt.wantValidated {
				t.Errorf("ValidChannel called %d times, want %d", validated.Load(), tt.wantValidated)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if len(err.Error()) > 120 {
					t.Errorf("error echoes too much input: %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil || len(got) != tt.wantN {
				t.Fatalf("got %d channels, err %v; want %d", len(got), err, tt.wantN)
			}
		})
	}
}

// TestHostileSubscribeRefused sends the probe's 60,000-channel list, and
// its variations, over a real handshake: a 400 problem naming the
// parameter, and no socket.
func TestHostileSubscribeRefused(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, query, wantField, wantMessage string
	}{
		// The probe's list, and as separate values: refused by the length
		// of the query, before anything parses it.
		{"OneValue", "subscribe=" + channelList(60000), "query", "32960 bytes"},
		{"ManyValues", "subscribe=" + strings.ReplaceAll(channelList(40000), ",", "&subscribe="), "query", "32960 bytes"},
		// A query under its cap whose ?subscribe= is over its own.
		{"SubscribeOverItsCap", "subscribe=" + channelList(1000), "subscribe", "8256 bytes"},
		{"SubscribeOverItsCapAsValues", "subscribe=" + strings.ReplaceAll(channelList(1000), ",", "&subscribe="), "subscribe", "8256 bytes"},
		// Past net/url's 10,000 parameters the query parses to nothing: a
		// silent "no subscriptions" would be wrong, so it is refused.
		{"PastTheParameterLimit", "subscribe=books" + strings.Repeat("&a", 10000), "query", "limit"},
		{"Semicolon", "subscribe=books;x=1", "query", "semicolon"},
		{"BadEscape", "subscribe=books%zz", "query", "escape"},
	}
	for _, tt := range tests {
		query := tt.query
		ws, resp, err := websocket.Dial(testContext(t), e.url+"?"+query,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer alice"}}})
		if err == nil {
			ws.CloseNow()
			t.Fatalf("%s: dial succeeded, want 400", tt.name)
		}
		if resp == nil {
			t.Fatalf("no HTTP response: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		p := checkProblem(t, resp, body, http.StatusBadRequest, "invalid-parameter")
		if len(p.Errors) != 1 || p.Errors[0].Field != tt.wantField || !strings.Contains(p.Errors[0].Message, tt.wantMessage) {
			t.Errorf("%s: errors = %+v, want %s: …%s…", tt.name, p.Errors, tt.wantField, tt.wantMessage)
		}
	}
	if s := e.hub.Stats(); s != (hub.Stats{}) {
		t.Fatalf("Stats = %+v, want nothing held", s)
	}
}

// dialRefused dials as token and expects a refusal before the upgrade.
func (e *env) dialRefused(t *testing.T, token string) (*http.Response, []byte) {
	t.Helper()
	ws, resp, err := websocket.Dial(testContext(t), e.url,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err == nil {
		ws.CloseNow()
		t.Fatal("dial succeeded, want a refusal")
	}
	if resp == nil {
		t.Fatalf("no HTTP response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func checkSubjectCap(t *testing.T, resp *http.Response, body []byte, limit int) {
	t.Helper()
	p := checkProblem(t, resp, body, http.StatusTooManyRequests, "too-many-connections")
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("Retry-After = %q, want positive seconds", resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(p.Detail, strconv.Itoa(limit)) {
		t.Errorf("detail %q does not name the limit %d", p.Detail, limit)
	}
}

// TestMaxConnsPerSubject walks one subject to the default cap and back.
// The steps share state, so they are one test rather than subtests.
func TestMaxConnsPerSubject(t *testing.T) {
	e := newEnv(t, nil)
	clients := make([]*client, hub.DefaultMaxConnsPerSubject)
	for i := range clients {
		clients[i] = e.dial(t, "")
	}

	// The 101st is refused before the upgrade.
	resp, body := e.dialRefused(t, "alice")
	checkSubjectCap(t, resp, body, hub.DefaultMaxConnsPerSubject)

	// Another subject is unaffected.
	e.dialToken(t, "user-carol", "", nil).expectType("welcome")

	// Closing one frees exactly one slot, by the time the disconnect is seen.
	clients[0].ws.Close(websocket.StatusNormalClosure, "bye")
	e.obs.waitDisconnects(t, 1)
	e.dial(t, "").sync()
	resp, body = e.dialRefused(t, "alice")
	checkSubjectCap(t, resp, body, hub.DefaultMaxConnsPerSubject)

	if s := e.hub.Stats(); s.Connections != hub.DefaultMaxConnsPerSubject+1 {
		t.Fatalf("Stats = %+v, want %d connections (alice's cap and carol)", s, hub.DefaultMaxConnsPerSubject+1)
	}
}

// TestMaxConnsPerSubjectConcurrent: simultaneous handshakes of one subject
// cannot overshoot the cap, and every one over it is a 429.
func TestMaxConnsPerSubjectConcurrent(t *testing.T) {
	const limit, tries = 5, 40
	e := newEnv(t, func(o *hub.Options) { o.MaxConnsPerSubject = limit })
	var wg sync.WaitGroup
	var ok, refused, other atomic.Int64
	for range tries {
		wg.Go(func() {
			ws, resp, err := websocket.Dial(testContext(t), e.url,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer user-dave"}}})
			switch {
			case err == nil:
				ok.Add(1)
				t.Cleanup(func() { ws.CloseNow() })
			case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
				refused.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != limit || refused.Load() != tries-limit || other.Load() != 0 {
		t.Fatalf("%d accepted, %d refused with 429, %d other; want %d, %d, 0", ok.Load(), refused.Load(), other.Load(), limit, tries-limit)
	}
}

func TestMaxConnsPerSubjectNegativeIsUnlimited(t *testing.T) {
	e := newEnv(t, func(o *hub.Options) { o.MaxConnsPerSubject = -1 })
	for range hub.DefaultMaxConnsPerSubject + 1 {
		e.dial(t, "")
	}
}

// TestSubjectSlotReleasedOnFailedUpgrade: a handshake refused after it was
// counted (here: an unhijackable writer) gives its slot back.
func TestSubjectSlotReleasedOnFailedUpgrade(t *testing.T) {
	h, err := hub.New(hub.Options{Authenticate: authenticate, ValidChannel: validChannel, Logger: testLogger(t), MaxConnsPerSubject: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the client, so it runs after the client's CloseNow
	// (cleanups run last first) and need not wait out a close handshake.
	t.Cleanup(func() {
		if err := h.Shutdown(testContext(t)); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	hidden := &env{url: newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
	}))}
	for range 2 {
		resp, body := hidden.send(t, validHandshake())
		checkProblem(t, resp, body, http.StatusInternalServerError, "internal")
	}
	direct := &env{hub: h, url: newServer(t, h)}
	direct.dial(t, "")
	resp, body := direct.dialRefused(t, "alice")
	checkSubjectCap(t, resp, body, 1)
}
