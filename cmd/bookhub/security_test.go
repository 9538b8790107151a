package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/signin/oidctest"
)

const (
	rootEmail    = "root@example.com"
	rootPassword = "a long bootstrap passphrase"
	userPassword = "correct horse battery staple"
)

// tokenPair is the body of a login or refresh.
type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	User         struct {
		ID   int64  `json:"id"`
		Role string `json:"role"`
	} `json:"user"`
}

func securityEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		config.EnvBootstrapEmail:    rootEmail,
		config.EnvBootstrapPassword: rootPassword,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func login(t *testing.T, base, email, password string) tokenPair {
	t.Helper()
	var p tokenPair
	resp := do(t, "POST", base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": password}, &p)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %s", email, resp.Status)
	}
	return p
}

// addUser creates an account through the admin API and signs it in.
func addUser(t *testing.T, base, admin, email, role string) tokenPair {
	t.Helper()
	resp := do(t, "POST", base+"/api/v1/users", admin,
		map[string]string{"email": email, "password": userPassword, "display_name": role, "role": role}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %s", email, resp.Status)
	}
	return login(t, base, email, userPassword)
}

func ticket(t *testing.T, base, token string) string {
	t.Helper()
	var out struct {
		Ticket string `json:"ticket"`
	}
	if resp := do(t, "POST", base+"/api/v1/ws-ticket", token, nil, &out); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ws-ticket: %s", resp.Status)
	}
	return out.Ticket
}

// dialTicket opens a socket with a one-time ticket and reads the welcome.
func dialTicket(t *testing.T, base, tk, query string) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?ticket="+tk+query, nil)
	if err != nil {
		if resp != nil {
			return nil, errors.New(resp.Status)
		}
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	if f := readFrame(t, c); f.Type != "welcome" {
		t.Fatalf("first frame %+v", f)
	}
	return c, nil
}

// TestSignInTicketsAndRoleVariants: the bootstrap admin creates a viewer
// and an editor; both open sockets with one-time tickets; an editor's write
// reaches the editor with the staff-only fields and the viewer without
// them, live and in a resume replay.
func TestSignInTicketsAndRoleVariants(t *testing.T) {
	app := startApp(t, "sec", securityEnv(nil))
	base := "http://" + app.Addr()
	root := login(t, base, rootEmail, rootPassword)
	if root.User.Role != "admin" {
		t.Fatalf("bootstrap admin has role %q", root.User.Role)
	}
	viewer := addUser(t, base, root.AccessToken, "vi@example.com", "viewer")
	editor := addUser(t, base, root.AccessToken, "ed@example.com", "editor")

	vt := ticket(t, base, viewer.AccessToken)
	vc, err := dialTicket(t, base, vt, "&subscribe=books")
	if err != nil {
		t.Fatalf("dial with ticket: %v", err)
	}
	if f := readFrame(t, vc); f.Type != "subscribed" {
		t.Fatalf("viewer: %+v", f)
	}
	if _, err := dialTicket(t, base, vt, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("second use of a ticket: %v, want 401", err)
	}
	ec, err := dialTicket(t, base, ticket(t, base, editor.AccessToken), "&subscribe=books")
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, ec)

	var b book
	if resp := do(t, "POST", base+"/api/v1/books", editor.AccessToken,
		map[string]any{"title": "Dune", "author": "Frank Herbert", "price": 9.99, "cost_price": 4.25, "supplier": "Chilton"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	checkVariant := func(who string, f frame, staff bool) frame {
		t.Helper()
		if f.Type != "event" || f.BookID != b.ID {
			t.Fatalf("%s: frame %+v", who, f)
		}
		has := strings.Contains(string(f.Book), "cost_price") || strings.Contains(string(f.Book), "Chilton")
		if has != staff {
			t.Fatalf("%s: staff fields present = %v in %s", who, has, f.Book)
		}
		return f
	}
	live := checkVariant("viewer", readFrame(t, vc), false)
	checkVariant("editor", readFrame(t, ec), true)

	// A viewer resuming from 0 replays the history: still no staff fields.
	rc, err := dialTicket(t, base, ticket(t, base, viewer.AccessToken), "&subscribe=books&since=0&epoch="+live.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, rc); f.Type != "subscribed" || f.Recovered == nil || !*f.Recovered {
		t.Fatalf("resume: %+v", f)
	}
	checkVariant("viewer replay", readFrame(t, rc), false)
}

// TestInBandRefreshOverREST: a socket opened with an access token takes the
// next access token in-band, and a logout closes it.
func TestInBandRefreshAndLogoutClose(t *testing.T) {
	app := startApp(t, "sec", securityEnv(nil))
	base := "http://" + app.Addr()
	root := login(t, base, rootEmail, rootPassword)
	c := dialWS(t, base, root.AccessToken, "books")
	var next tokenPair
	if resp := do(t, "POST", base+"/api/v1/auth/refresh", "", map[string]string{"refresh_token": root.RefreshToken}, &next); resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %s", resp.Status)
	}
	writeText(t, c, `{"type":"refresh","id":"r1","token":"`+next.AccessToken+`"}`)
	if f := readFrame(t, c); f.Type != "refreshed" {
		t.Fatalf("after in-band refresh: %+v", f)
	}
	writeText(t, c, `{"type":"refresh","id":"r2","token":"not-a-token"}`)
	if f := readFrame(t, c); f.Type != "error" || f.Code != "invalid_token" {
		t.Fatalf("bad in-band token: %+v", f)
	}
	if resp := do(t, "POST", base+"/api/v1/auth/logout", "", map[string]string{"refresh_token": next.RefreshToken}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s", resp.Status)
	}
	expectClose(t, c, 3001)
}

func expectClose(t *testing.T, c *websocket.Conn, code websocket.StatusCode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue // events may still be queued before the close
		}
		if got := websocket.CloseStatus(err); got != code {
			t.Fatalf("socket ended with %v (status %d), want close %d", err, got, code)
		}
		return
	}
}

// TestRevocationClosesSocketsOnEveryInstance: a user signed in on one
// instance, with a socket on another; disabling the user on a third closes
// that socket within a second, through the Redis revocation list, and their
// token is refused everywhere.
func TestRevocationClosesSocketsOnEveryInstance(t *testing.T) {
	env := securityEnv(map[string]string{
		config.EnvDatabaseURL: testenv.MySQL(t),
		config.EnvRedisURL:    testenv.Redis(t),
		config.EnvRedisPrefix: testenv.Prefix(t),
	})
	var bases []string
	for i := range 3 {
		bases = append(bases, "http://"+startApp(t, "node-"+strconv.Itoa(i), env).Addr())
	}
	root := login(t, bases[0], rootEmail, rootPassword)
	ed := addUser(t, bases[0], root.AccessToken, "ed@example.com", "editor")
	vi := addUser(t, bases[1], root.AccessToken, "vi@example.com", "viewer")

	// Role variants across instances: a viewer on node-0, an editor on
	// node-1, a write on node-2.
	vc := dialWS(t, bases[0], vi.AccessToken, "books")
	ec := dialWS(t, bases[1], ed.AccessToken, "books")
	if resp := do(t, "POST", bases[2]+"/api/v1/books", ed.AccessToken,
		map[string]any{"title": "Dune", "author": "Frank Herbert", "cost_price": 4.25, "supplier": "Chilton"}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s", resp.Status)
	}
	for _, c := range []struct {
		who   string
		conn  *websocket.Conn
		staff bool
	}{{"viewer on node-0", vc, false}, {"editor on node-1", ec, true}} {
		f := readFrame(t, c.conn)
		if has := strings.Contains(string(f.Book), "cost_price"); f.Type != "event" || has != c.staff {
			t.Fatalf("%s: %s frame with staff fields = %v: %s", c.who, f.Type, has, f.Book)
		}
	}
	// The ticket is issued on one instance and redeemed on another.
	c, err := dialTicket(t, bases[1], ticket(t, bases[0], ed.AccessToken), "&subscribe=books")
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, c)
	start := time.Now()
	resp := do(t, "PATCH", bases[2]+"/api/v1/users/"+strconv.FormatInt(ed.User.ID, 10), root.AccessToken,
		map[string]any{"disabled": true}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("disable: %s", resp.Status)
	}
	expectClose(t, c, 3001)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the socket closed %s after the disable, want within 1s", d)
	}
	// Every instance refuses the token within a second of the disable.
	for _, base := range bases {
		for {
			resp := do(t, "GET", base+"/api/v1/auth/me", ed.AccessToken, nil, nil)
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s still accepts the token of a disabled user %s after the disable: %s", base, time.Since(start), resp.Status)
			}
			time.Sleep(10 * time.Millisecond) // polling other instances over HTTP: no signal to wait on
		}
	}
	var again tokenPair
	if resp := do(t, "POST", bases[1]+"/api/v1/auth/refresh", "", map[string]string{"refresh_token": ed.RefreshToken}, &again); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refresh of a disabled user: %s", resp.Status)
	}
}

// freeAddr picks a loopback port for an instance whose own URL must be in
// its configuration (the OIDC redirect URL) before it listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestOIDCSignInEndToEnd runs the whole browser flow against a provider
// started inside the test: login redirect, provider, callback, token pair;
// a second sign-in finds the same account.
func TestOIDCSignInEndToEnd(t *testing.T) {
	idp := oidctest.Start(t, oidctest.Options{})
	addr := freeAddr(t)
	app := startApp(t, "sec", map[string]string{
		config.EnvAddr:             addr,
		config.EnvOIDCName:         "test",
		config.EnvOIDCIssuer:       idp.Issuer(),
		config.EnvOIDCClientID:     idp.ClientID(),
		config.EnvOIDCClientSecret: idp.ClientSecret(),
		config.EnvOIDCRedirectURL:  "http://" + addr + "/api/v1/auth/oidc/test/callback",
	})
	base := "http://" + app.Addr()
	signIn := func() tokenPair {
		t.Helper()
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		resp, err := client.Get(base + "/api/v1/auth/oidc/test/login")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p tokenPair
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("callback answered %s (%v)", resp.Status, err)
		}
		return p
	}
	first := signIn()
	if first.User.Role != "viewer" || first.AccessToken == "" || first.RefreshToken == "" {
		t.Fatalf("first sign-in: %+v", first)
	}
	var me struct {
		Email string `json:"email"`
	}
	if resp := do(t, "GET", base+"/api/v1/auth/me", first.AccessToken, nil, &me); resp.StatusCode != 200 || me.Email != oidctest.DefaultUser().Email {
		t.Fatalf("me: %s %+v", resp.Status, me)
	}
	if again := signIn(); again.User.ID != first.User.ID {
		t.Fatalf("second sign-in made user %d, want %d", again.User.ID, first.User.ID)
	}
	var providers struct {
		Providers []struct{ Name string } `json:"providers"`
	}
	if do(t, "GET", base+"/api/v1/auth/providers", "", nil, &providers); len(providers.Providers) != 1 || providers.Providers[0].Name != "test" {
		t.Fatalf("providers: %+v", providers)
	}
	// A callback without the flow cookie is refused.
	if resp := do(t, "GET", base+"/api/v1/auth/oidc/test/callback?state=x&code=y", "", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged callback: %s, want 400", resp.Status)
	}
}
