package signin_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/signin/oidctest"
)

func begin(t *testing.T, p *signin.Provider, target string, tlsReq bool) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if tlsReq {
		r.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	err := p.Begin(w, r)
	return w, err
}

func TestBeginRedirect(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	w, err := begin(t, h.p, "/login", false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusFound {
		t.Fatalf("status %d, want 302", w.Code)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	loc, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != h.idp.Issuer()+"/authorize" {
		t.Errorf("redirected to %s, want the provider's authorization endpoint", got)
	}
	q := loc.Query()
	for key, want := range map[string]string{
		"response_type":         "code",
		"client_id":             h.idp.ClientID(),
		"redirect_uri":          h.app.URL + callbackPath,
		"code_challenge_method": "S256",
	} {
		if q.Get(key) != want {
			t.Errorf("%s = %q, want %q", key, q.Get(key), want)
		}
	}
	for _, key := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(key) == "" {
			t.Errorf("no %s in the authorization request", key)
		}
	}
	if q.Has("code_verifier") {
		t.Error("the PKCE verifier leaked into the authorization request")
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v, want one flow cookie", cookies)
	}
	ck := cookies[0]
	for _, secret := range []string{q.Get("state"), q.Get("nonce")} {
		if strings.Contains(ck.Value, secret) {
			t.Error("flow cookie carries the state or nonce in the clear")
		}
	}
}

func TestBeginCookieAttributes(t *testing.T) {
	idp := oidctest.Start(t, oidctest.Options{})
	cases := []struct {
		name       string
		redirect   string
		secureOpt  bool
		tlsRequest bool
		wantSecure bool
	}{
		{name: "PlainHTTP", redirect: "http://app.test/auth/test/callback"},
		{name: "HTTPSRedirectURL", redirect: "https://app.test/auth/test/callback", wantSecure: true},
		{name: "TLSRequest", redirect: "http://app.test/auth/test/callback", tlsRequest: true, wantSecure: true},
		{name: "SecureCookieOption", redirect: "http://app.test/auth/test/callback", secureOpt: true, wantSecure: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := signin.New(t.Context(), signin.Config{
				Name: "test", IssuerURL: idp.Issuer(), ClientID: idp.ClientID(), RedirectURL: tc.redirect,
			}, signin.Options{StateKey: stateKey, HTTPClient: idp.Client(), SecureCookie: tc.secureOpt})
			if err != nil {
				t.Fatal(err)
			}
			w, err := begin(t, p, "/login", tc.tlsRequest)
			if err != nil {
				t.Fatal(err)
			}
			ck := w.Result().Cookies()[0]
			if ck.Name != "bookhub_signin_test" || ck.Path != callbackPath || !ck.HttpOnly ||
				ck.SameSite != http.SameSiteLaxMode || ck.MaxAge != int(signin.DefaultFlowTTL.Seconds()) {
				t.Errorf("cookie = %+v, want HttpOnly, SameSite=Lax, Path=%s, Max-Age=600", ck, callbackPath)
			}
			if ck.Secure != tc.wantSecure {
				t.Errorf("Secure = %v, want %v", ck.Secure, tc.wantSecure)
			}
		})
	}
}

func TestBeginReturnTo(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	cases := []struct {
		returnTo string
		ok       bool
	}{
		{"", true},
		{"/", true},
		{"/dashboard", true},
		{"/books?page=2&q=go", true},
		{"/books/9780134190440#reviews", true},
		{"https://evil.example/", false},
		{"http:/evil.example", false},
		{"//evil.example/path", false},
		{"///evil.example", false},
		{`/\evil.example`, false},
		{`\\evil.example`, false},
		{"/\t/evil.example", false},
		{"/x\r\nSet-Cookie: a=b", false},
		{"dashboard", false},
		{"javascript:alert(1)", false},
		{"/" + strings.Repeat("a", 1024), false},
	}
	for _, tc := range cases {
		t.Run(url.QueryEscape(tc.returnTo), func(t *testing.T) {
			w, err := begin(t, h.p, "/login?return_to="+url.QueryEscape(tc.returnTo), false)
			if tc.ok {
				if err != nil || w.Code != http.StatusFound {
					t.Fatalf("Begin(%q) = %v, status %d; want a redirect", tc.returnTo, err, w.Code)
				}
				return
			}
			if kind(err) != "ErrInvalidReturnTo" {
				t.Fatalf("Begin(%q) = %v, want ErrInvalidReturnTo", tc.returnTo, err)
			}
			if len(w.Result().Cookies()) != 0 || w.Header().Get("Location") != "" {
				t.Fatal("a refused Begin wrote a cookie or a redirect")
			}
		})
	}
}

func TestSignInReturnToRoundTrip(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	c := h.browser()
	r := h.callback(c, h.authorize(c, ""))
	if r.err != nil || r.ext.ReturnTo != "" {
		t.Fatalf("Finish = %+v, %v; want no return path", r.ext, r.err)
	}
}
