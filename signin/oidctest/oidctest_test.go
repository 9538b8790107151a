package oidctest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/signin/oidctest"
)

const redirect = "http://app.test/cb"

func challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeQuery(s *oidctest.Server, verifier string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {s.ClientID()},
		"redirect_uri":          {redirect},
		"scope":                 {"openid email"},
		"state":                 {"st"},
		"nonce":                 {"nc"},
		"code_challenge":        {challenge(verifier)},
		"code_challenge_method": {"S256"},
	}
}

// authorize calls /authorize and returns the status and, for a redirect,
// the query it redirected with.
func authorize(t *testing.T, ctx context.Context, s *oidctest.Server, q url.Values) (int, url.Values) {
	t.Helper()
	c := s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Issuer()+"/authorize?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return resp.StatusCode, nil
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirect {
		t.Fatalf("redirected to %s, want %s", got, redirect)
	}
	return resp.StatusCode, loc.Query()
}

func exchange(t *testing.T, ctx context.Context, s *oidctest.Server, form url.Values, id, secret string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode token response: %v", err)
	}
	return resp.StatusCode, body
}

func TestAuthorizeRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := oidctest.Start(t, oidctest.Options{RedirectURL: redirect})
	cases := []struct {
		name      string
		edit      func(url.Values)
		wantCode  int    // status of a refusal answered directly
		wantError string // or the error= of a refusal redirected back
	}{
		{name: "UnknownClient", edit: func(q url.Values) { q.Set("client_id", "mallory") }, wantCode: http.StatusBadRequest},
		{name: "UnregisteredRedirect", edit: func(q url.Values) { q.Set("redirect_uri", "http://evil.test/cb") }, wantCode: http.StatusBadRequest},
		{name: "NoPKCE", edit: func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, wantError: "invalid_request"},
		{name: "PlainPKCE", edit: func(q url.Values) { q.Set("code_challenge_method", "plain") }, wantError: "invalid_request"},
		{name: "NoOpenIDScope", edit: func(q url.Values) { q.Set("scope", "email") }, wantError: "invalid_scope"},
		{name: "NotCodeFlow", edit: func(q url.Values) { q.Set("response_type", "token") }, wantError: "unsupported_response_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authorizeQuery(s, "v")
			tc.edit(q)
			status, back := authorize(t, ctx, s, q)
			if tc.wantCode != 0 {
				if status != tc.wantCode {
					t.Fatalf("status %d, want %d", status, tc.wantCode)
				}
				return
			}
			if back.Get("error") != tc.wantError || back.Get("state") != "st" || back.Has("code") {
				t.Fatalf("redirected back with %v, want error=%s and the state", back, tc.wantError)
			}
		})
	}
	if n := len(s.Authorizations()); n != 0 {
		t.Fatalf("%d refused requests were recorded as authorizations", n)
	}
}

func TestTokenRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clk := testenv.NewClock(time.Now())
	s := oidctest.Start(t, oidctest.Options{Now: clk.Now})
	const verifier = "the-verifier-the-test-knows-0123456789abcdefghij"

	cases := []struct {
		name     string
		edit     func(form url.Values)
		id, sec  string
		before   func(t *testing.T, code string) // runs after /authorize
		wantCode int
		want     string // the refusal recorded
	}{
		{name: "OK", wantCode: http.StatusOK},
		{name: "WrongVerifier", edit: func(f url.Values) { f.Set("code_verifier", "not-"+verifier) }, wantCode: 400, want: "invalid_grant: PKCE verifier mismatch"},
		{name: "ChallengeAsVerifier", edit: func(f url.Values) { f.Set("code_verifier", challenge(verifier)) }, wantCode: 400, want: "invalid_grant: PKCE verifier mismatch"},
		{name: "NoVerifier", edit: func(f url.Values) { f.Del("code_verifier") }, wantCode: 400, want: "invalid_grant: PKCE verifier missing"},
		{name: "WrongSecret", sec: "guess", wantCode: 401, want: "invalid_client: bad client credentials"},
		{name: "WrongClient", id: "mallory", wantCode: 401, want: "invalid_client: bad client credentials"},
		{name: "WrongRedirect", edit: func(f url.Values) { f.Set("redirect_uri", "http://app.test/other") }, wantCode: 400, want: "invalid_grant: redirect_uri differs from the authorization request"},
		{name: "UnknownCode", edit: func(f url.Values) { f.Set("code", "made-up") }, wantCode: 400, want: "invalid_grant: unknown code"},
		{name: "WrongGrantType", edit: func(f url.Values) { f.Set("grant_type", "password") }, wantCode: 400, want: "unsupported_grant_type: password"},
		{name: "ExpiredCode", before: func(*testing.T, string) { clk.Advance(2 * time.Minute) }, wantCode: 400, want: "invalid_grant: code expired"},
		{name: "ReusedCode", before: func(t *testing.T, code string) {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
			if st, _ := exchange(t, ctx, s, form, s.ClientID(), s.ClientSecret()); st != http.StatusOK {
				t.Fatalf("first exchange: status %d", st)
			}
		}, wantCode: 400, want: "invalid_grant: code already used"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, back := authorize(t, ctx, s, authorizeQuery(s, verifier))
			code := back.Get("code")
			if code == "" {
				t.Fatalf("no code: %v", back)
			}
			if tc.before != nil {
				tc.before(t, code)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}
			if tc.edit != nil {
				tc.edit(form)
			}
			id, sec := s.ClientID(), s.ClientSecret()
			if tc.id != "" {
				id = tc.id
			}
			if tc.sec != "" {
				sec = tc.sec
			}
			before := len(s.Refusals())
			status, body := exchange(t, ctx, s, form, id, sec)
			if status != tc.wantCode {
				t.Fatalf("status %d (%v), want %d", status, body, tc.wantCode)
			}
			ref := s.Refusals()
			if tc.want == "" {
				if len(ref) != before || body["id_token"] == nil {
					t.Fatalf("OK exchange: refusals %q, body %v", ref[before:], body)
				}
				return
			}
			if len(ref) != before+1 || ref[before] != tc.want {
				t.Fatalf("refusals = %q, want one more: %q", ref[before:], tc.want)
			}
			if body["id_token"] != nil || body["access_token"] != nil {
				t.Fatal("a refused exchange returned tokens")
			}
		})
	}
}
