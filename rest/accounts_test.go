package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/rest"
)

const testPassword = "correct horse battery staple"

// accountsEnv is an API with sign-in enabled, over the real store and the
// in-process state.
type accountsEnv struct {
	*env
	svc *accounts.Service
}

func newAccountsEnv(t *testing.T, registration bool, mod func(*accounts.Options)) *accountsEnv {
	t.Helper()
	ae := &accountsEnv{}
	ae.env = newEnv(t, func(o *rest.Options) {
		st := openStore(t)
		o.Books = st
		passwords, err := auth.NewPasswords(auth.PasswordOptions{Params: auth.Argon2Params{Memory: 1024, Time: 1, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		opts := accounts.Options{Users: st, Tokens: newTokens(t), Passwords: passwords,
			Revocations:       authstate.NewMemoryRevocations(authstate.RevocationOptions{}),
			Tickets:           authstate.NewMemoryTickets(authstate.TicketOptions{}),
			AllowRegistration: registration}
		if mod != nil {
			mod(&opts)
		}
		ae.svc, err = accounts.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		o.Tokens, o.Accounts, o.AllowRegistration = nil, ae.svc, registration
	})
	return ae
}

type wireTokens struct {
	AccessToken      string   `json:"access_token"`
	TokenType        string   `json:"token_type"`
	ExpiresIn        int64    `json:"expires_in"`
	ExpiresAt        string   `json:"expires_at"`
	RefreshToken     string   `json:"refresh_token"`
	RefreshExpiresAt string   `json:"refresh_expires_at"`
	User             wireUser `json:"user"`
}

type wireUser struct {
	ID          int64   `json:"id"`
	Email       *string `json:"email"`
	DisplayName string  `json:"display_name"`
	Role        string  `json:"role"`
	Disabled    bool    `json:"disabled"`
	Password    bool    `json:"password"`
	OIDCIssuer  *string `json:"oidc_issuer"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

func (e *accountsEnv) createUser(t *testing.T, email string, role auth.Role) wireUser {
	t.Helper()
	u, err := e.svc.CreateUser(testContext(t), accounts.NewUser{Email: email, DisplayName: "User " + string(role),
		Password: testPassword, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return wireUser{ID: u.ID, Role: string(u.Role)}
}

func (e *accountsEnv) login(t *testing.T, email string) wireTokens {
	t.Helper()
	r := e.do(t, request{method: "POST", path: "/api/v1/auth/login",
		body: fmt.Sprintf(`{"email":%q,"password":%q}`, email, testPassword)})
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("login response Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
	}
	return decodeStrict[wireTokens](t, r.body)
}

func TestLoginRefreshLogoutMe(t *testing.T) {
	e := newAccountsEnv(t, false, nil)
	e.createUser(t, "ada@example.com", auth.RoleEditor)
	tk := e.login(t, "ada@example.com")
	if tk.TokenType != "Bearer" || tk.ExpiresIn < 890 || tk.ExpiresIn > 900 || tk.User.Role != "editor" || !tk.User.Password {
		t.Fatalf("tokens = %+v", tk)
	}
	me := e.do(t, request{method: "GET", path: "/api/v1/auth/me", token: tk.AccessToken})
	if me.status != http.StatusOK {
		t.Fatalf("me: %d %s", me.status, me.body)
	}
	if u := decodeStrict[wireUser](t, me.body); u.ID != tk.User.ID || u.Email == nil || *u.Email != "ada@example.com" {
		t.Fatalf("me = %+v", u)
	}
	if strings.Contains(string(me.body), "argon2") {
		t.Fatal("the password hash leaked into /me")
	}
	r := e.do(t, request{method: "POST", path: "/api/v1/auth/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, tk.RefreshToken)})
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	next := decodeStrict[wireTokens](t, r.body)
	if next.RefreshToken == tk.RefreshToken {
		t.Fatal("refresh did not rotate")
	}
	r = e.do(t, request{method: "POST", path: "/api/v1/auth/logout", body: fmt.Sprintf(`{"refresh_token":%q}`, next.RefreshToken)})
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	r = e.do(t, request{method: "GET", path: "/api/v1/auth/me", token: next.AccessToken})
	if r.status != http.StatusUnauthorized {
		t.Fatalf("me after logout: %d, want 401", r.status)
	}
}

func TestAuthRefusals(t *testing.T) {
	e := newAccountsEnv(t, false, nil)
	e.createUser(t, "ada@example.com", auth.RoleViewer)
	viewer := e.login(t, "ada@example.com").AccessToken
	for _, tc := range []struct {
		name   string
		req    request
		status int
		slug   string
		field  string
	}{
		{"login: wrong password", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":"wrong wrong wrong"}`}, 401, "invalid-credentials", ""},
		{"login: unknown email, same answer", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"who@example.com","password":"wrong wrong wrong"}`}, 401, "invalid-credentials", ""},
		{"login: missing password", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com"}`}, 422, "validation", "password"},
		{"login: password not a string", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":123}`}, 400, "invalid-field", "password"},
		{"login: unknown field", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"a","password":"b","remember":true}`}, 400, "invalid-field", "remember"},
		{"login: malformed JSON", request{method: "POST", path: "/api/v1/auth/login", body: `{"email":`}, 400, "malformed-body", ""},
		{"login: not JSON", request{method: "POST", path: "/api/v1/auth/login", body: `email=a`, headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported-media-type", ""},
		{"refresh: garbage", request{method: "POST", path: "/api/v1/auth/refresh", body: `{"refresh_token":"nope"}`}, 401, "invalid-refresh-token", ""},
		{"refresh: an access token", request{method: "POST", path: "/api/v1/auth/refresh", body: fmt.Sprintf(`{"refresh_token":%q}`, viewer)}, 401, "invalid-refresh-token", ""},
		{"register: turned off", request{method: "POST", path: "/api/v1/auth/register", body: `{"email":"b@example.com","password":"correct horse battery staple","display_name":"B"}`}, 403, "registration-closed", ""},
		{"me: no token", request{method: "GET", path: "/api/v1/auth/me"}, 401, "unauthorized", ""},
		{"me: refresh token as access token", request{method: "GET", path: "/api/v1/auth/me", token: "bhr_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}, 401, "unauthorized", ""},
		{"users: viewer", request{method: "GET", path: "/api/v1/users", token: viewer}, 403, "forbidden", ""},
		{"users: no token", request{method: "GET", path: "/api/v1/users"}, 401, "unauthorized", ""},
		{"ws-ticket: no token", request{method: "POST", path: "/api/v1/ws-ticket"}, 401, "unauthorized", ""},
		{"oidc: unknown provider", request{method: "GET", path: "/api/v1/auth/oidc/nope/login"}, 404, "not-found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, tc.req)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if p.Type != "urn:bookhub:problem:"+tc.slug {
				t.Fatalf("type %q, want slug %q", p.Type, tc.slug)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Fatalf("errors %+v, want field %q", p.Errors, tc.field)
			}
		})
	}
}

func TestRegisterAndConflicts(t *testing.T) {
	e := newAccountsEnv(t, true, nil)
	r := e.do(t, request{method: "POST", path: "/api/v1/auth/register",
		body: `{"email":"new@example.com","password":"correct horse battery staple","display_name":"New"}`})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if tk := decodeStrict[wireTokens](t, r.body); tk.User.Role != "viewer" || tk.AccessToken == "" {
		t.Fatalf("register = %+v", tk)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"taken email in another case", `{"email":"NEW@example.com","password":"correct horse battery staple","display_name":"X"}`, 409, "email"},
		{"common password", `{"email":"x@example.com","password":"password1234","display_name":"X"}`, 422, "password"},
		{"short password", `{"email":"x@example.com","password":"aB3$","display_name":"X"}`, 422, "password"},
		{"bad email", `{"email":"not-an-email","password":"correct horse battery staple","display_name":"X"}`, 422, "email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, request{method: "POST", path: "/api/v1/auth/register", body: tc.body})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Fatalf("errors %+v, want field %q", p.Errors, tc.field)
			}
		})
	}
	// A duplicate ISBN names its own field too: one conflict dialect.
	e.createBook(t, `{"title":"A","author":"B","isbn":"9780441172719"}`)
	r = e.do(t, request{method: "POST", path: "/api/v1/books", token: e.token(t, auth.RoleEditor), body: `{"title":"C","author":"D","isbn":"9780441172719"}`})
	if p := r.problem(t); r.status != 409 || p.Type != "urn:bookhub:problem:conflict" || len(p.Errors) == 0 || p.Errors[0].Field != "isbn" {
		t.Fatalf("duplicate isbn: %d %s", r.status, r.body)
	}
}

func TestUserAdministration(t *testing.T) {
	e := newAccountsEnv(t, false, nil)
	e.createUser(t, "root@example.com", auth.RoleAdmin)
	admin := e.login(t, "root@example.com")
	r := e.do(t, request{method: "POST", path: "/api/v1/users", token: admin.AccessToken,
		body: `{"email":"ed@example.com","password":"correct horse battery staple","display_name":"Ed","role":"editor"}`})
	if r.status != http.StatusCreated || !strings.HasPrefix(r.header.Get("Location"), "/api/v1/users/") {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	ed := decodeStrict[wireUser](t, r.body)
	edTokens := e.login(t, "ed@example.com")

	r = e.do(t, request{method: "GET", path: "/api/v1/users?limit=1", token: admin.AccessToken})
	var page struct {
		Users      []wireUser `json:"users"`
		NextCursor string     `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 || len(page.Users) != 1 || page.NextCursor == "" {
		t.Fatalf("list page 1: %d %s", r.status, r.body)
	}
	r = e.do(t, request{method: "GET", path: "/api/v1/users?limit=1&cursor=" + page.NextCursor, token: admin.AccessToken})
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Users) != 1 || page.Users[0].ID != ed.ID {
		t.Fatalf("list page 2: %d %s", r.status, r.body)
	}

	path := fmt.Sprintf("/api/v1/users/%d", ed.ID)
	r = e.do(t, request{method: "PATCH", path: path, token: admin.AccessToken, body: `{"role":"viewer"}`,
		headers: map[string]string{"Content-Type": "application/merge-patch+json"}})
	if r.status != 200 || decodeStrict[wireUser](t, r.body).Role != "viewer" {
		t.Fatalf("set role: %d %s", r.status, r.body)
	}
	if r := e.do(t, request{method: "GET", path: "/api/v1/auth/me", token: edTokens.AccessToken}); r.status != 401 {
		t.Fatalf("old token after role change: %d, want 401", r.status)
	}
	for _, tc := range []struct {
		name, path, body string
		status           int
		slug             string
	}{
		{"unknown role", path, `{"role":"superuser"}`, 422, "validation"},
		{"role not a string", path, `{"role":1}`, 400, "invalid-field"},
		{"email is not changed here", path, `{"email":"x@example.com"}`, 400, "invalid-field"},
		{"disabled not a boolean", path, `{"disabled":"yes"}`, 400, "invalid-field"},
		{"no such user", "/api/v1/users/9999", `{"disabled":true}`, 404, "not-found"},
		{"bad id", "/api/v1/users/abc", `{"disabled":true}`, 400, "invalid-parameter"},
		{"admin demotes self", fmt.Sprintf("/api/v1/users/%d", admin.User.ID), `{"role":"viewer"}`, 409, "self-change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, request{method: "PATCH", path: tc.path, token: admin.AccessToken, body: tc.body,
				headers: map[string]string{"Content-Type": "application/merge-patch+json"}})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if p := r.problem(t); p.Type != "urn:bookhub:problem:"+tc.slug {
				t.Fatalf("type %q, want %q", p.Type, tc.slug)
			}
		})
	}
	r = e.do(t, request{method: "PATCH", path: path, token: admin.AccessToken, body: `{"disabled":true}`,
		headers: map[string]string{"Content-Type": "application/merge-patch+json"}})
	if r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	r = e.do(t, request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ed@example.com","password":"correct horse battery staple"}`})
	if r.status != 403 || r.problem(t).Type != "urn:bookhub:problem:account-disabled" {
		t.Fatalf("login of a disabled user: %d %s", r.status, r.body)
	}
}

func TestStaffFieldsByRole(t *testing.T) {
	e := newAccountsEnv(t, false, nil)
	editor := e.token(t, auth.RoleEditor)
	r := e.do(t, request{method: "POST", path: "/api/v1/books", token: editor,
		body: `{"title":"Dune","author":"Frank Herbert","price":9.99,"cost_price":4.5,"supplier":"Chilton"}`})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	b := r.book(t)
	if b.CostPrice == nil || b.CostPrice.String() != "4.50" || b.Supplier == nil || *b.Supplier != "Chilton" {
		t.Fatalf("editor sees %s", r.body)
	}
	path := fmt.Sprintf("/api/v1/books/%d", b.ID)
	for _, tc := range []struct {
		name  string
		token string
		staff bool
	}{
		{"anonymous", "", false},
		{"viewer", e.token(t, auth.RoleViewer), false},
		{"editor", editor, true},
		{"admin", e.token(t, auth.RoleAdmin), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []string{path, "/api/v1/books"} {
				r := e.do(t, request{method: "GET", path: p, token: tc.token})
				if r.status != 200 {
					t.Fatalf("GET %s: %d %s", p, r.status, r.body)
				}
				has := strings.Contains(string(r.body), "cost_price") || strings.Contains(string(r.body), "Chilton")
				if has != tc.staff {
					t.Fatalf("GET %s as %s: staff fields present = %v: %s", p, tc.name, has, r.body)
				}
				if !strings.Contains(r.header.Get("Vary"), "Authorization") {
					t.Fatalf("GET %s: Vary = %q, want Authorization", p, r.header.Get("Vary"))
				}
			}
		})
	}
	// A token that is sent must be valid: no silent downgrade to anonymous.
	if r := e.do(t, request{method: "GET", path: path, token: "bogus"}); r.status != 401 {
		t.Fatalf("GET with a bad token: %d, want 401", r.status)
	}
}

func TestWSTicket(t *testing.T) {
	e := newAccountsEnv(t, false, nil)
	e.createUser(t, "ada@example.com", auth.RoleViewer)
	tk := e.login(t, "ada@example.com")
	r := e.do(t, request{method: "POST", path: "/api/v1/ws-ticket", token: tk.AccessToken})
	if r.status != http.StatusCreated {
		t.Fatalf("ticket: %d %s", r.status, r.body)
	}
	var out struct {
		Ticket    string `json:"ticket"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || !strings.HasPrefix(out.Ticket, "bht_") {
		t.Fatalf("ticket body %s", r.body)
	}
	id, err := e.svc.RedeemTicket(testContext(t), out.Ticket)
	if err != nil || id.Subject != fmt.Sprint(tk.User.ID) {
		t.Fatalf("redeem: %+v %v", id, err)
	}
}

func TestCORS(t *testing.T) {
	off := newEnv(t, nil)
	r := off.do(t, request{method: "GET", path: "/api/v1/books", headers: map[string]string{"Origin": "https://dash.example.com"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers sent while CORS is off (the default)")
	}
	on := newEnv(t, func(o *rest.Options) { o.CORSOrigins = []string{"https://dash.example.com"} })
	pre := func(origin string) response {
		return on.do(t, request{method: "OPTIONS", path: "/api/v1/books", headers: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}})
	}
	r = pre("https://dash.example.com")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://dash.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("credentials allowed: tokens travel in headers, never cookies")
	}
	r = pre("https://evil.example.net")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", r.status, r.header)
	}
	r = on.do(t, request{method: "GET", path: "/api/v1/books", headers: map[string]string{"Origin": "https://dash.example.com"}})
	if r.header.Get("Access-Control-Allow-Origin") != "https://dash.example.com" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("allowed GET: %v", r.header)
	}
}

func TestJWKS(t *testing.T) {
	priv, err := auth.GenerateEdDSAKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.EdDSAKey("k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewWithKeys(key, nil, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *rest.Options) { o.JWKS = tokens.JWKSHandler() })
	r := e.do(t, request{method: "GET", path: "/.well-known/jwks.json"})
	if r.status != 200 || !strings.Contains(string(r.body), `"kid":"k1"`) || strings.Contains(string(r.body), `"d"`) {
		t.Fatalf("jwks: %d %s", r.status, r.body)
	}
}

func TestLoginRateLimit(t *testing.T) {
	limiter, err := authstate.NewMemoryLimiter(authstate.Limit{Requests: 2, Window: time.Minute}, authstate.LimiterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := newAccountsEnv(t, false, func(o *accounts.Options) { o.Limits.LoginAccount = limiter })
	e.createUser(t, "ada@example.com", auth.RoleViewer)
	for i := 0; i < 2; i++ {
		e.do(t, request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":"wrong wrong wrong"}`})
	}
	r := e.do(t, request{method: "POST", path: "/api/v1/auth/login", body: `{"email":"ada@example.com","password":"correct horse battery staple"}`})
	if r.status != http.StatusTooManyRequests || r.problem(t).Type != "urn:bookhub:problem:rate-limited" {
		t.Fatalf("third login: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After = %q, want 1..60 seconds", r.header.Get("Retry-After"))
	}
}
