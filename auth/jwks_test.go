package auth_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/auth"
)

type testJWK struct {
	Kty, Crv, X, Kid, Alg, Use string
	D                          string `json:"d"`
	K                          string `json:"k"`
}

func parseJWKS(t *testing.T, b []byte) []testJWK {
	t.Helper()
	var set struct {
		Keys []testJWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	if set.Keys == nil {
		t.Fatalf(`JWKS %s has no "keys" array`, b)
	}
	return set.Keys
}

func TestJWKS(t *testing.T) {
	signing, _ := edKey(t, "ed-new")
	old, _ := edKey(t, "ed-old")
	tk := newWithKeys(t, signing, []auth.Key{hsKey(t, "hs", secret), old}, testNow)
	keys := parseJWKS(t, tk.JWKS())
	if len(keys) != 2 || keys[0].Kid != "ed-new" || keys[1].Kid != "ed-old" {
		t.Fatalf("JWKS keys = %+v, want ed-new then ed-old and no HS256 key", keys)
	}
	for _, k := range keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || k.D != "" || k.K != "" {
			t.Fatalf("JWK = %+v", k)
		}
	}
	if strings.Contains(string(tk.JWKS()), base64.RawURLEncoding.EncodeToString(secret)) {
		t.Fatal("JWKS contains the HS256 secret")
	}

	// A client holding only the JWKS can verify a token: x is the public key.
	tok := mustIssue(t, tk)
	x, err := base64.RawURLEncoding.DecodeString(keys[0].X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("x = %q (%v)", keys[0].X, err)
	}
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(x, []byte(tok[:dot]), sig) {
		t.Fatal("token does not verify with the published key")
	}
}

func TestJWKSOnlyHS256IsEmpty(t *testing.T) {
	tk := newTokens(t, testNow)
	if got := string(tk.JWKS()); got != `{"keys":[]}` {
		t.Fatalf("JWKS = %s", got)
	}
}

func TestJWKSHandler(t *testing.T) {
	signing, _ := edKey(t, "ed")
	tk := newWithKeys(t, signing, nil, testNow)
	srv := httptest.NewServer(tk.JWKSHandler())
	t.Cleanup(srv.Close)

	cases := []struct {
		method   string
		status   int
		wantBody bool
	}{
		{http.MethodGet, http.StatusOK, true},
		{http.MethodHead, http.StatusOK, false},
		{http.MethodPost, http.StatusMethodNotAllowed, false},
		{http.MethodPut, http.StatusMethodNotAllowed, false},
		{http.MethodDelete, http.StatusMethodNotAllowed, false},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status == http.StatusMethodNotAllowed {
				if res.Header.Get("Allow") != "GET, HEAD" {
					t.Fatalf("Allow = %q", res.Header.Get("Allow"))
				}
				return
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "max-age=300" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if tc.wantBody && string(body) != string(tk.JWKS()) {
				t.Errorf("body = %s, want %s", body, tk.JWKS())
			}
			if !tc.wantBody && len(body) != 0 {
				t.Errorf("HEAD body = %q", body)
			}
		})
	}
}
