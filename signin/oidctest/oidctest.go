// Package oidctest runs a small, strict OpenID Connect provider on
// httptest for tests of sign-in code: discovery, a JWKS with an RS256 key
// generated per server, an /authorize endpoint that approves a configured
// user at once, and a /token endpoint that enforces client credentials,
// redirect_uri, single-use codes and PKCE S256. Faults make it misbehave in
// the ways a real provider (or an attacker between it and bookhub) might.
//
// It is for tests only: it keeps everything in memory and trusts loopback.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// User is who the provider signs in.
type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
}

// Fault makes the provider misbehave; see Server.SetFault.
type Fault int

// The faults. Each affects every request from the moment it is set.
const (
	// NoFault is normal behaviour.
	NoFault Fault = iota
	// DenyAccess makes /authorize send the user back with
	// error=access_denied, as when they click "Cancel".
	DenyAccess
	// AuthorizeServerError makes /authorize send the user back with
	// error=temporarily_unavailable.
	AuthorizeServerError
	// WrongNonce issues ID tokens whose nonce is not the one requested.
	WrongNonce
	// WrongAudience issues ID tokens for another client.
	WrongAudience
	// WrongIssuer issues ID tokens claiming another issuer.
	WrongIssuer
	// ExpiredToken issues ID tokens that expired a minute ago.
	ExpiredToken
	// BadSignature signs ID tokens with a key that is not in the JWKS (under
	// the published key's kid).
	BadSignature
	// TokenUnavailable makes /token answer 503.
	TokenUnavailable
	// JWKSUnavailable makes the JWKS endpoint answer 503.
	JWKSUnavailable
	// NoIDToken leaves id_token out of the token response.
	NoIDToken
	// WrongAtHash issues ID tokens whose at_hash is not the access token's.
	WrongAtHash
)

// Options configure a Server. The zero value works.
type Options struct {
	// ClientID and ClientSecret are the one registered client; defaults
	// "bookhub" and "bookhub-secret".
	ClientID     string
	ClientSecret string
	// RedirectURL, when set, is the only redirect_uri accepted; otherwise
	// any http(s) URL is, and /token requires the one /authorize got.
	RedirectURL string
	// User is signed in by /authorize; the zero value means DefaultUser().
	User User
	// Now stamps iat and exp; nil means time.Now.
	Now func() time.Time
	// TokenTTL is the ID token's lifetime; zero means 5 minutes.
	TokenTTL time.Duration
	// CodeChallengeMethods is advertised in discovery; nil means ["S256"].
	// /token verifies S256 whatever is advertised.
	CodeChallengeMethods []string
}

// DefaultUser returns who signs in when Options.User is zero.
func DefaultUser() User {
	return User{Subject: "user-1", Email: "reader@example.test", EmailVerified: true, Name: "Test Reader"}
}

// Authorization is one approved /authorize request, as recorded.
type Authorization struct {
	ClientID            string
	RedirectURI         string
	Scope               string
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	Code                string
}

// Server is a running test provider. It is safe for concurrent use.
type Server struct {
	srv     *httptest.Server
	issuer  string
	opts    Options
	key     *rsa.PrivateKey
	rogue   *rsa.PrivateKey
	keyID   string
	codeTTL time.Duration

	mu       sync.Mutex
	fault    Fault
	user     User
	authz    []Authorization
	codes    map[string]*grant
	refusals []string
}

type grant struct {
	Authorization
	issued time.Time
	used   bool
}

// Start starts a provider on a loopback port and closes it in tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "bookhub"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "bookhub-secret"
	}
	if opts.User == (User{}) {
		opts.User = DefaultUser()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 5 * time.Minute
	}
	if opts.CodeChallengeMethods == nil {
		opts.CodeChallengeMethods = []string{"S256"}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("oidctest: generate key: %v", err)
	}
	rogue, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("oidctest: generate key: %v", err)
	}
	s := &Server{
		opts:    opts,
		key:     key,
		rogue:   rogue,
		keyID:   "test-key-1",
		codeTTL: time.Minute,
		user:    opts.User,
		codes:   map[string]*grant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /jwks", s.jwks)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	// The listener exists before Start, so the issuer is known before any
	// request can read it.
	s.srv = httptest.NewUnstartedServer(mux)
	s.issuer = "http://" + s.srv.Listener.Addr().String()
	s.srv.Start()
	tb.Cleanup(s.srv.Close)
	return s
}

// Issuer is the provider's issuer URL, for signin.Config.IssuerURL.
func (s *Server) Issuer() string { return s.issuer }

// ClientID is the registered client's ID.
func (s *Server) ClientID() string { return s.opts.ClientID }

// ClientSecret is the registered client's secret.
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }

// TokenURL is the token endpoint, for tests that call it directly.
func (s *Server) TokenURL() string { return s.issuer + "/token" }

// Client returns an HTTP client for talking to the provider.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close stops the provider now (Start already arranged it for cleanup), so
// that a test can see what an unreachable provider does.
func (s *Server) Close() { s.srv.Close() }

// SetFault switches the provider's behaviour; NoFault restores it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetUser changes who /authorize signs in from now on.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = u
}

// Authorizations returns the /authorize requests approved so far, oldest
// first.
func (s *Server) Authorizations() []Authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authz)
}

// Refusals returns why each refused /token request was refused, oldest
// first, as "error: reason" ("invalid_grant: PKCE verifier mismatch").
func (s *Server) Refusals() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refusals)
}

func (s *Server) currentFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer,
		"authorization_endpoint":                s.issuer + "/authorize",
		"token_endpoint":                        s.issuer + "/token",
		"jwks_uri":                              s.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      s.opts.CodeChallengeMethods,
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	if s.currentFault() == JWKSUnavailable {
		http.Error(w, "jwks down", http.StatusServiceUnavailable)
		return
	}
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": s.keyID,
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// authorize approves at once. Until client_id and redirect_uri are known to
// be good it answers 400 itself: redirecting errors to an unchecked
// redirect_uri would make it an open redirector.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.opts.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "" ||
		(s.opts.RedirectURL != "" && q.Get("redirect_uri") != s.opts.RedirectURL) {
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		if st := q.Get("state"); st != "" {
			params.Set("state", st)
		}
		u := *redirect
		u.RawQuery = params.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only code")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "openid is required")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with S256 is required")
		return
	}
	switch s.currentFault() {
	case DenyAccess:
		fail("access_denied", "the user said no")
		return
	case AuthorizeServerError:
		fail("temporarily_unavailable", "try later")
		return
	}
	code := b64(randomBytes(32))
	a := Authorization{
		ClientID:            q.Get("client_id"),
		RedirectURI:         q.Get("redirect_uri"),
		Scope:               q.Get("scope"),
		State:               q.Get("state"),
		Nonce:               q.Get("nonce"),
		CodeChallenge:       q.Get("code_challenge"),
		CodeChallengeMethod: q.Get("code_challenge_method"),
		Code:                code,
	}
	s.mu.Lock()
	s.authz = append(s.authz, a)
	s.codes[code] = &grant{Authorization: a, issued: s.opts.Now()}
	s.mu.Unlock()
	back(url.Values{"code": {code}})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.currentFault() == TokenUnavailable {
		http.Error(w, "token endpoint down", http.StatusServiceUnavailable)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.refuse(w, http.StatusBadRequest, "invalid_request", "unparsable form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 §2.3.1: client_secret_basic form-encodes both parts.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		s.refuse(w, http.StatusUnauthorized, "invalid_client", "bad client credentials")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		s.refuse(w, http.StatusBadRequest, "unsupported_grant_type", r.PostForm.Get("grant_type"))
		return
	}
	g, reason := s.redeem(r.PostForm.Get("code"))
	switch {
	case reason != "":
	case g.ClientID != id:
		reason = "code issued to another client"
	case r.PostForm.Get("redirect_uri") != g.RedirectURI:
		reason = "redirect_uri differs from the authorization request"
	case r.PostForm.Get("code_verifier") == "":
		reason = "PKCE verifier missing"
	case b64sha256(r.PostForm.Get("code_verifier")) != g.CodeChallenge:
		reason = "PKCE verifier mismatch"
	}
	if reason != "" {
		s.refuse(w, http.StatusBadRequest, "invalid_grant", reason)
		return
	}
	access := b64(randomBytes(32))
	idToken, err := s.idToken(g.Authorization, access)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   300,
		"id_token":     idToken,
	}
	if s.currentFault() == NoIDToken {
		delete(resp, "id_token")
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// redeem looks a code up and marks it used: a code is good for one
// exchange, even a failed one (RFC 6749 §4.1.2).
func (s *Server) redeem(code string) (grant, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.codes[code]
	switch {
	case !ok:
		return grant{}, "unknown code"
	case g.used:
		return grant{}, "code already used"
	case s.opts.Now().Sub(g.issued) > s.codeTTL:
		g.used = true
		return grant{}, "code expired"
	}
	g.used = true
	return *g, ""
}

func (s *Server) refuse(w http.ResponseWriter, status int, code, reason string) {
	s.mu.Lock()
	s.refusals = append(s.refusals, code+": "+reason)
	s.mu.Unlock()
	writeJSON(w, status, map[string]string{"error": code, "error_description": reason})
}

func (s *Server) idToken(a Authorization, accessToken string) (string, error) {
	s.mu.Lock()
	fault, user := s.fault, s.user
	s.mu.Unlock()
	now := s.opts.Now()
	claims := jwt.MapClaims{
		"iss":            s.issuer,
		"aud":            a.ClientID,
		"sub":            user.Subject,
		"email":          user.Email,
		"email_verified": user.EmailVerified,
		"name":           user.Name,
		"nonce":          a.Nonce,
		"iat":            now.Unix(),
		"exp":            now.Add(s.opts.TokenTTL).Unix(),
		"at_hash":        atHash(accessToken),
	}
	key := s.key
	switch fault {
	case WrongNonce:
		claims["nonce"] = "not-the-nonce-you-sent"
	case WrongAudience:
		claims["aud"] = "some-other-client"
	case WrongIssuer:
		claims["iss"] = "https://issuer.invalid"
	case ExpiredToken:
		claims["iat"] = now.Add(-time.Hour).Unix()
		claims["exp"] = now.Add(-time.Minute).Unix()
	case BadSignature:
		key = s.rogue
	case WrongAtHash:
		claims["at_hash"] = atHash("another access token")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = s.keyID
	signed, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign ID token: %w", err)
	}
	return signed, nil
}

// atHash is OpenID Connect's at_hash for RS256: the left half of the
// SHA-256 of the access token.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return b64(sum[:len(sum)/2])
}

func b64sha256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
