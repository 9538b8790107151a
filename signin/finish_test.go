package signin_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/signin/oidctest"
)

func TestSignIn(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	c := h.browser()
	cb := h.authorize(c, "/dashboard?tab=loans")
	if flowCookie(c, cb) == nil {
		t.Fatal("Begin set no flow cookie for the callback path")
	}
	r := h.callback(c, cb)
	if r.err != nil {
		t.Fatalf("Finish: %v", r.err)
	}
	want := signin.External{
		Issuer:        h.idp.Issuer(),
		Subject:       oidctest.DefaultUser().Subject,
		Email:         oidctest.DefaultUser().Email,
		EmailVerified: true,
		Name:          oidctest.DefaultUser().Name,
		ReturnTo:      "/dashboard?tab=loans",
	}
	if r.ext != want {
		t.Fatalf("External = %+v, want %+v", r.ext, want)
	}
	if flowCookie(c, cb) != nil {
		t.Fatal("flow cookie still set after Finish; it must be single use")
	}

	authz := h.idp.Authorizations()
	if len(authz) != 1 {
		t.Fatalf("provider saw %d authorizations, want 1", len(authz))
	}
	a := authz[0]
	if a.CodeChallengeMethod != "S256" || len(a.CodeChallenge) != 43 {
		t.Errorf("code challenge %q method %q, want a 43-character S256 challenge", a.CodeChallenge, a.CodeChallengeMethod)
	}
	if a.Nonce == "" || a.State == "" || a.Nonce == a.State {
		t.Errorf("state %q nonce %q: want two distinct random values", a.State, a.Nonce)
	}
	if a.State != cb.Query().Get("state") {
		t.Errorf("callback state %q, provider got %q", cb.Query().Get("state"), a.State)
	}
	if got := strings.Fields(a.Scope); !slices.Equal(got, []string{"openid", "email", "profile"}) {
		t.Errorf("scope = %q", a.Scope)
	}
	if logs := h.logs.String(); strings.Contains(logs, a.Code) || strings.Contains(logs, a.State) {
		t.Errorf("logs contain the code or state:\n%s", logs)
	}
}

func TestSignInFreshValuesPerFlow(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	for range 2 {
		c := h.browser()
		if r := h.callback(c, h.authorize(c, "")); r.err != nil {
			t.Fatalf("Finish: %v", r.err)
		}
	}
	a := h.idp.Authorizations()
	if a[0].State == a[1].State || a[0].Nonce == a[1].Nonce || a[0].CodeChallenge == a[1].CodeChallenge {
		t.Fatalf("two flows shared state, nonce or challenge: %+v", a)
	}
}

// providerError rewrites the callback as the provider's error response.
func providerError(code string) func(*harness, *http.Client, *url.URL) (*http.Client, *url.URL) {
	return func(_ *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
		q := cb.Query()
		q.Del("code")
		q.Set("error", code)
		cb.RawQuery = q.Encode()
		return c, cb
	}
}

// TestFinishRefuses spoils one thing per case, between the provider's
// redirect and the callback, or at the provider.
func TestFinishRefuses(t *testing.T) {
	type spoil func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL)
	setQuery := func(key, value string) spoil {
		return func(_ *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			q := cb.Query()
			if value == "" {
				q.Del(key)
			} else {
				q.Set(key, value)
			}
			cb.RawQuery = q.Encode()
			return c, cb
		}
	}
	cases := []struct {
		name    string
		fault   oidctest.Fault
		spoil   spoil
		tweak   func(*signin.Config, *signin.Options)
		want    string
		refusal string // expected last refusal at the provider's /token
		log     string // the logs must contain this
	}{
		{name: "StateMismatch", spoil: setQuery("state", "forged"), want: "ErrFlowInvalid"},
		{name: "StateMissing", spoil: setQuery("state", ""), want: "ErrFlowInvalid"},
		{name: "CodeMissing", spoil: setQuery("code", ""), want: "ErrFlowInvalid"},
		{name: "CookieMissing", want: "ErrFlowInvalid", spoil: func(h *harness, _ *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			return h.browser(), cb // another browser: never began
		}},
		{name: "CookieTampered", want: "ErrFlowInvalid", spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			ck := flowCookie(c, cb)
			b := []byte(ck.Value)
			i := len(b) / 2
			b[i] ^= 'A' ^ 'B' // keeps it base64url, changes the ciphertext
			if b[i] == ck.Value[i] {
				h.t.Fatal("tamper did not change the cookie")
			}
			c.Jar.SetCookies(cb, []*http.Cookie{{Name: ck.Name, Value: string(b), Path: callbackPath}})
			return c, cb
		}},
		{name: "CookieGarbage", want: "ErrFlowInvalid", spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			c.Jar.SetCookies(cb, []*http.Cookie{{Name: "bookhub_signin_test", Value: "bm90LWEtZmxvdw", Path: callbackPath}})
			return c, cb
		}},
		{name: "FlowExpired", want: "ErrFlowInvalid", spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			h.clock.Advance(signin.DefaultFlowTTL)
			return c, cb
		}},
		{name: "AccessDenied", fault: oidctest.DenyAccess, want: "ErrDenied"},
		// The provider's other error codes, as it would send them back.
		{name: "ProviderServerError", spoil: providerError("server_error"), want: "ErrUnavailable"},
		{name: "ProviderRefusesClient", spoil: providerError("unauthorized_client"), want: "ErrProvider", log: "check the client registration"},
		{name: "ProviderErrorGarbage", spoil: providerError("x\nlevel=ERROR msg=forged"), want: "ErrProvider", log: "error=xlevelERRORmsgforged"},
		{name: "AuthorizeTemporarilyUnavailable", fault: oidctest.AuthorizeServerError, want: "ErrUnavailable"},
		{name: "WrongNonce", fault: oidctest.WrongNonce, want: "ErrInvalidToken"},
		{name: "WrongAudience", fault: oidctest.WrongAudience, want: "ErrInvalidToken"},
		{name: "ExpiredIDToken", fault: oidctest.ExpiredToken, want: "ErrInvalidToken"},
		{name: "WrongIssuer", fault: oidctest.WrongIssuer, want: "ErrInvalidToken"},
		{name: "BadSignature", fault: oidctest.BadSignature, want: "ErrInvalidToken"},
		{name: "NoIDToken", fault: oidctest.NoIDToken, want: "ErrInvalidToken"},
		{name: "WrongAtHash", fault: oidctest.WrongAtHash, want: "ErrInvalidToken"},
		{name: "NoSubject", want: "ErrInvalidToken", spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			h.idp.SetUser(oidctest.User{Email: "nobody@example.test"})
			return c, cb
		}},
		{name: "TokenEndpointDown", fault: oidctest.TokenUnavailable, want: "ErrUnavailable"},
		{name: "JWKSDown", fault: oidctest.JWKSUnavailable, want: "ErrUnavailable"},
		{name: "ProviderUnreachable", want: "ErrUnavailable", spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
			h.idp.Close()
			return c, cb
		}},
		{
			name:    "WrongClientSecret",
			tweak:   func(cfg *signin.Config, _ *signin.Options) { cfg.ClientSecret = "not-the-secret" },
			want:    "ErrInvalidToken",
			refusal: "invalid_client: bad client credentials",
		},
		{
			// A code stolen from another browser's flow, injected with this
			// browser's own state and cookie: the state matches, but the
			// sealed PKCE verifier is not the one the code was issued for.
			name: "InjectedCode", want: "ErrInvalidToken", refusal: "invalid_grant: PKCE verifier mismatch",
			spoil: func(h *harness, c *http.Client, cb *url.URL) (*http.Client, *url.URL) {
				other := h.authorize(h.browser(), "")
				q := cb.Query()
				q.Set("code", other.Query().Get("code"))
				cb.RawQuery = q.Encode()
				return c, cb
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, oidctest.Options{}, tc.tweak)
			h.idp.SetFault(tc.fault)
			c := h.browser()
			cb := h.authorize(c, "")
			var sentCookie string
			if ck := flowCookie(c, cb); ck != nil {
				sentCookie = ck.Value
			}
			if tc.spoil != nil {
				c, cb = tc.spoil(h, c, cb)
			}
			r := h.callback(c, cb)
			t.Logf("Finish: %v", r.err)
			if got := kind(r.err); got != tc.want {
				t.Fatalf("Finish error = %v (%s), want %s", r.err, got, tc.want)
			}
			if r.ext != (signin.External{}) {
				t.Errorf("refused Finish returned an identity: %+v", r.ext)
			}
			if flowCookie(c, cb) != nil {
				t.Error("flow cookie survived a refused callback")
			}
			if tc.refusal != "" {
				ref := h.idp.Refusals()
				if len(ref) == 0 || ref[len(ref)-1] != tc.refusal {
					t.Errorf("provider refusals = %q, want last %q", ref, tc.refusal)
				}
			}
			logs := h.logs.String()
			if !strings.Contains(logs, tc.log) {
				t.Errorf("logs do not contain %q:\n%s", tc.log, logs)
			}
			for _, secret := range []string{cb.Query().Get("code"), sentCookie} {
				if secret != "" && strings.Contains(logs, secret) {
					t.Errorf("logs contain a code or the cookie:\n%s", logs)
				}
			}
			if code := cb.Query().Get("code"); code != "" && strings.Contains(r.err.Error(), code) {
				t.Errorf("error %q contains the code", r.err)
			}
		})
	}
}

// TestFinishReplay shows both defences against a replayed callback: the
// cookie is gone, and with the cookie put back the provider's code is
// single use.
func TestFinishReplay(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	c := h.browser()
	cb := h.authorize(c, "")
	saved := flowCookie(c, cb)
	if r := h.callback(c, cb); r.err != nil {
		t.Fatalf("first Finish: %v", r.err)
	}

	t.Run("CookieCleared", func(t *testing.T) {
		if r := h.callback(c, cb); kind(r.err) != "ErrFlowInvalid" {
			t.Fatalf("replay: %v, want ErrFlowInvalid", r.err)
		}
	})
	t.Run("CodeSingleUse", func(t *testing.T) {
		c.Jar.SetCookies(cb, []*http.Cookie{{Name: saved.Name, Value: saved.Value, Path: callbackPath}})
		if r := h.callback(c, cb); kind(r.err) != "ErrInvalidToken" {
			t.Fatalf("replay with the old cookie: %v, want ErrInvalidToken", r.err)
		}
		ref := h.idp.Refusals()
		if len(ref) != 1 || ref[0] != "invalid_grant: code already used" {
			t.Fatalf("provider refusals = %q", ref)
		}
	})
}

func TestFinishCookieIsPerStateKey(t *testing.T) {
	h := newHarness(t, oidctest.Options{}, nil)
	other := newHarness(t, oidctest.Options{}, func(_ *signin.Config, o *signin.Options) {
		o.StateKey = []byte("another key, also thirty-two bytes long")
	})
	c := h.browser()
	cb := h.authorize(c, "")
	// Carry the flow to an app that seals with another key.
	ck := flowCookie(c, cb)
	target, err := url.Parse(other.app.URL + callbackPath + "?" + cb.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	c.Jar.SetCookies(target, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: callbackPath}})
	if r := other.callback(c, target); kind(r.err) != "ErrFlowInvalid" {
		t.Fatalf("Finish with a cookie sealed under another key: %v, want ErrFlowInvalid", r.err)
	}
}
