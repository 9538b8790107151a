package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bookhub/bookhub/auth"
)

var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fixedClock(now time.Time) func() time.Time { return func() time.Time { return now } }

// edKey returns a fresh Ed25519 Key and its private key.
func edKey(t testing.TB, id string) (auth.Key, ed25519.PrivateKey) {
	t.Helper()
	priv, err := auth.GenerateEdDSAKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.EdDSAKey(id, priv)
	if err != nil {
		t.Fatal(err)
	}
	return k, priv
}

func hsKey(t testing.TB, id string, secret []byte) auth.Key {
	t.Helper()
	k, err := auth.HS256Key(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newWithKeys(t testing.TB, signing auth.Key, verifyOnly []auth.Key, now time.Time) *auth.Tokens {
	t.Helper()
	tk, err := auth.NewWithKeys(signing, verifyOnly, auth.Options{Now: fixedClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// segments decodes a compact JWT's header and payload.
func segments(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload
}

func TestIssueVerify(t *testing.T) {
	ed, _ := edKey(t, "ed-1")
	for name, tk := range map[string]*auth.Tokens{
		"HS256": newTokens(t, testNow),
		"EdDSA": newWithKeys(t, ed, nil, testNow),
	} {
		t.Run(name, func(t *testing.T) {
			tok, issued, err := tk.IssueAccess(auth.Claims{Subject: "alice", Role: auth.RoleEditor, Session: "fam-1", Generation: 1 << 60}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			id, err := tk.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "alice" || id.Role != auth.RoleEditor || id.Session != "fam-1" || id.Generation != 1<<60 ||
				!id.ExpiresAt.Equal(testNow.Add(time.Hour)) || !id.IssuedAt.Equal(testNow) {
				t.Fatalf("identity = %+v", id)
			}
			if id.TokenID != issued.TokenID || !id.ExpiresAt.Equal(issued.ExpiresAt) || !id.IssuedAt.Equal(issued.IssuedAt) ||
				id.Subject != issued.Subject || id.Session != issued.Session || id.Generation != issued.Generation {
				t.Fatalf("IssueAccess identity %+v != Verify identity %+v", issued, id)
			}
			if b, err := base64.RawURLEncoding.DecodeString(id.TokenID); err != nil || len(b) != 16 {
				t.Fatalf("jti %q is not 128 bits of base64url (%v)", id.TokenID, err)
			}
			h, p := segments(t, tok)
			if h["kid"] != tk.SigningKeyID() || h["typ"] != "at+jwt" || h["alg"] != name {
				t.Fatalf("header = %v", h)
			}
			for _, c := range []string{"sub", "role", "iss", "aud", "exp", "iat", "nbf", "jti", "sid", "gen"} {
				if _, ok := p[c]; !ok {
					t.Errorf("payload lacks %q: %v", c, p)
				}
			}
			if p["iss"] != "bookhub" {
				t.Errorf("iss = %v", p["iss"])
			}
		})
	}
}

func TestIssueWithoutSession(t *testing.T) {
	tk := newTokens(t, testNow)
	tok, err := tk.Issue("bob", auth.RoleViewer, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, p := segments(t, tok)
	if _, ok := p["sid"]; ok {
		t.Errorf("payload has sid without a session: %v", p)
	}
	if _, ok := p["gen"]; ok {
		t.Errorf("payload has gen without a generation: %v", p)
	}
	id, err := tk.Verify(tok)
	if err != nil || id.Session != "" || id.Generation != 0 {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
}

func TestTokenIDsAreUnique(t *testing.T) {
	tk := newTokens(t, testNow)
	seen := map[string]bool{}
	for range 100 {
		_, id, err := tk.IssueAccess(auth.Claims{Subject: "a", Role: auth.RoleViewer}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id.TokenID] {
			t.Fatalf("jti %q issued twice", id.TokenID)
		}
		seen[id.TokenID] = true
	}
}

func TestSubSecondTTLIsNotBornExpired(t *testing.T) {
	tk := newTokens(t, testNow)
	tok, err := tk.Issue("a", auth.RoleViewer, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tk.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !id.ExpiresAt.After(id.IssuedAt) {
		t.Fatalf("exp %v not after iat %v", id.ExpiresAt, id.IssuedAt)
	}
}

// signer crafts tokens for the refusal table.
type signer struct {
	t   *testing.T
	kid string
}

func (s signer) valid() jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "a", "role": "admin", "iss": "bookhub", "aud": []string{"bookhub"},
		"exp": testNow.Add(time.Hour).Unix(), "iat": testNow.Unix(), "nbf": testNow.Unix(), "jti": "j1",
	}
}

// with returns valid claims with changes applied; a nil value deletes.
func (s signer) with(changes map[string]any) jwt.MapClaims {
	c := s.valid()
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs c with method and key; header entries override the default
// kid and typ, and a nil value deletes the entry.
func (s signer) sign(method jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	s.t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = s.kid
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	str, err := tok.SignedString(key)
	if err != nil {
		s.t.Fatal(err)
	}
	return str
}

func TestVerifyRefuses(t *testing.T) {
	hs := newTokens(t, testNow)
	s := signer{t: t, kid: hs.SigningKeyID()}
	hsSign := func(c jwt.MapClaims, header map[string]any) string {
		return s.sign(jwt.SigningMethodHS256, secret, c, header)
	}

	ed, edPriv := edKey(t, "ed-1")
	edPub := edPriv.Public().(ed25519.PublicKey)
	edOnly := newWithKeys(t, ed, nil, testNow)
	// mixed verifies both algorithms, so the parser's algorithm list does
	// not hide confusion: only the kid-to-alg pinning can catch it.
	mixed := newWithKeys(t, ed, []auth.Key{hsKey(t, hs.SigningKeyID(), secret)}, testNow)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, otherEdPriv := edKey(t, "ed-other")

	good := hsSign(s.valid(), nil)
	parts := strings.Split(good, ".")
	forged, _ := json.Marshal(s.with(map[string]any{"sub": "mallory"}))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]
	refresh, err := auth.NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		verifier *auth.Tokens
		token    string
		want     error
		reason   string // substring of the error
	}{
		{"ErrMissingToken", hs, "", auth.ErrMissingToken, ""},
		{"Malformed", hs, "not.a.jwt", jwt.ErrTokenMalformed, ""},
		{"Oversized", hs, good + strings.Repeat("A", 9000), auth.ErrInvalidToken, "bytes"},
		{"AlgNone", hs, s.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.valid(), nil), jwt.ErrTokenSignatureInvalid, "none"},
		{"AlgNoneNoKid", hs, s.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.valid(), map[string]any{"kid": nil}), jwt.ErrTokenSignatureInvalid, "none"},
		{"AlgHS512", hs, s.sign(jwt.SigningMethodHS512, secret, s.valid(), nil), jwt.ErrTokenSignatureInvalid, "HS512"},
		{"RS256", mixed, s.sign(jwt.SigningMethodRS256, rsaKey, s.valid(), nil), jwt.ErrTokenSignatureInvalid, "RS256"},
		{"HS256SignedWithEdDSAPublicKey", mixed, s.sign(jwt.SigningMethodHS256, []byte(edPub), s.valid(), map[string]any{"kid": "ed-1"}), jwt.ErrTokenUnverifiable, `does not match key "ed-1"`},
		{"HS256SignedWithEdDSAPublicKeyNoKid", mixed, s.sign(jwt.SigningMethodHS256, []byte(edPub), s.valid(), map[string]any{"kid": nil}), jwt.ErrTokenUnverifiable, "does not match key"},
		{"HS256AgainstEdDSAOnly", edOnly, s.sign(jwt.SigningMethodHS256, []byte(edPub), s.valid(), map[string]any{"kid": "ed-1"}), jwt.ErrTokenSignatureInvalid, "HS256"},
		{"EdDSATokenNamingHSKey", mixed, s.sign(jwt.SigningMethodEdDSA, edPriv, s.valid(), nil), jwt.ErrTokenUnverifiable, "does not match key"},
		{"WrongHSKey", hs, s.sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), s.valid(), nil), jwt.ErrTokenSignatureInvalid, ""},
		{"WrongEdDSAKey", edOnly, s.sign(jwt.SigningMethodEdDSA, otherEdPriv, s.valid(), map[string]any{"kid": "ed-1"}), jwt.ErrTokenSignatureInvalid, ""},
		{"UnknownKid", hs, hsSign(s.valid(), map[string]any{"kid": "nope"}), jwt.ErrTokenUnverifiable, `unknown kid "nope"`},
		{"KidNotString", hs, hsSign(s.valid(), map[string]any{"kid": 7}), jwt.ErrTokenUnverifiable, "not a string"},
		{"TypJWT", hs, hsSign(s.valid(), map[string]any{"typ": "JWT"}), jwt.ErrTokenUnverifiable, "typ"},
		{"NoTyp", hs, hsSign(s.valid(), map[string]any{"typ": nil}), jwt.ErrTokenUnverifiable, "typ"},
		{"OtherAudience", hs, hsSign(s.with(map[string]any{"aud": "other"}), nil), jwt.ErrTokenInvalidAudience, ""},
		{"NoAudience", hs, hsSign(s.with(map[string]any{"aud": nil}), nil), jwt.ErrTokenRequiredClaimMissing, "aud"},
		{"OtherIssuer", hs, hsSign(s.with(map[string]any{"iss": "evil"}), nil), jwt.ErrTokenInvalidIssuer, ""},
		{"NoIssuer", hs, hsSign(s.with(map[string]any{"iss": nil}), nil), jwt.ErrTokenRequiredClaimMissing, "iss"},
		{"TamperedPayload", hs, tampered, jwt.ErrTokenSignatureInvalid, ""},
		{"Expired", hs, hsSign(s.with(map[string]any{"exp": testNow.Add(-6 * time.Second).Unix()}), nil), jwt.ErrTokenExpired, ""},
		{"NotYetValid", hs, hsSign(s.with(map[string]any{"nbf": testNow.Add(6 * time.Second).Unix()}), nil), jwt.ErrTokenNotValidYet, ""},
		{"IssuedInFuture", hs, hsSign(s.with(map[string]any{"iat": testNow.Add(6 * time.Second).Unix()}), nil), jwt.ErrTokenUsedBeforeIssued, ""},
		{"MissingExp", hs, hsSign(s.with(map[string]any{"exp": nil}), nil), jwt.ErrTokenRequiredClaimMissing, "exp"},
		{"MissingSub", hs, hsSign(s.with(map[string]any{"sub": nil}), nil), auth.ErrInvalidToken, "no sub"},
		{"MissingIat", hs, hsSign(s.with(map[string]any{"iat": nil}), nil), auth.ErrInvalidToken, "no iat"},
		{"MissingJti", hs, hsSign(s.with(map[string]any{"jti": nil}), nil), auth.ErrInvalidToken, "no jti"},
		{"UnknownRole", hs, hsSign(s.with(map[string]any{"role": "root"}), nil), auth.ErrInvalidToken, "unknown role"},
		{"MissingRole", hs, hsSign(s.with(map[string]any{"role": nil}), nil), auth.ErrInvalidToken, "unknown role"},
		{"ExpNotANumber", hs, hsSign(s.with(map[string]any{"exp": "tomorrow"}), nil), jwt.ErrTokenMalformed, ""},
		{"RefreshToken", hs, refresh, auth.ErrInvalidToken, "refresh token"},
		{"RefreshPrefixedGarbage", hs, "bhr_x", auth.ErrInvalidToken, "refresh token"},
	}
	// The baseline must verify, or every case below proves nothing.
	if _, err := hs.Verify(good); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.verifier.Verify(tc.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
			if !errors.Is(tc.want, auth.ErrMissingToken) && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify error = %v does not wrap ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Verify error = %v, want it to mention %q", err, tc.reason)
			}
			if id != (auth.Identity{}) {
				t.Fatalf("refused Verify returned identity %+v", id)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	hs := newTokens(t, testNow)
	s := signer{t: t, kid: hs.SigningKeyID()}
	hsSign := func(c jwt.MapClaims, header map[string]any) string {
		return s.sign(jwt.SigningMethodHS256, secret, c, header)
	}
	cases := map[string]string{
		"ExpiredWithinLeeway":   hsSign(s.with(map[string]any{"exp": testNow.Add(-4 * time.Second).Unix()}), nil),
		"NotBeforeWithinLeeway": hsSign(s.with(map[string]any{"nbf": testNow.Add(4 * time.Second).Unix()}), nil),
		"IssuedAtWithinLeeway":  hsSign(s.with(map[string]any{"iat": testNow.Add(4 * time.Second).Unix()}), nil),
		"NoNbf":                 hsSign(s.with(map[string]any{"nbf": nil}), nil),
		"AudienceString":        hsSign(s.with(map[string]any{"aud": "bookhub"}), nil),
		"AudienceAmongOthers":   hsSign(s.with(map[string]any{"aud": []string{"other", "bookhub"}}), nil),
		"NoKidUsesSigningKey":   hsSign(s.valid(), map[string]any{"kid": nil}),
		"TypMediaType":          hsSign(s.valid(), map[string]any{"typ": "application/at+jwt"}),
		"TypCaseInsensitive":    hsSign(s.valid(), map[string]any{"typ": "AT+JWT"}),
		"UnknownClaimsIgnored":  hsSign(s.with(map[string]any{"scope": "books"}), nil),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := hs.Verify(tok); err != nil {
				t.Fatalf("Verify refused: %v", err)
			}
		})
	}
}

func TestOptionsIssuerAudience(t *testing.T) {
	k := hsKey(t, "k1", secret)
	a, err := auth.NewWithKeys(k, nil, auth.Options{Now: fixedClock(testNow), Issuer: "https://id.example", Audience: "books-api"})
	if err != nil {
		t.Fatal(err)
	}
	b := newWithKeys(t, k, nil, testNow) // defaults: bookhub/bookhub
	tok, err := a.Issue("a", auth.RoleViewer, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("own token refused: %v", err)
	}
	if _, err := b.Verify(tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token for another issuer and audience: err = %v", err)
	}
	_, p := segments(t, tok)
	if p["iss"] != "https://id.example" {
		t.Fatalf("iss = %v", p["iss"])
	}
}

func TestRotation(t *testing.T) {
	oldHS := hsKey(t, "old-hs", secret)
	oldEd, oldEdPriv := edKey(t, "old-ed")
	newEd, _ := edKey(t, "new-ed")
	strangerKey, _ := edKey(t, "stranger")

	issue := func(k auth.Key) string {
		t.Helper()
		tok, err := newWithKeys(t, k, nil, testNow).Issue("a", auth.RoleViewer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	oldPub, err := auth.EdDSAPublicKey("old-ed", oldEdPriv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	rotated := newWithKeys(t, newEd, []auth.Key{oldHS, oldPub}, testNow)
	for name, tc := range map[string]struct {
		token string
		ok    bool
	}{
		"OldHS256StillVerifies":         {issue(oldHS), true},
		"OldEdDSAStillVerifies":         {issue(oldEd), true},
		"NewKeyVerifies":                {issue(newEd), true},
		"KeyNotInSetRefused":            {issue(strangerKey), false},
		"NewKeyIssuedByRotatedVerifies": {mustIssue(t, rotated), true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rotated.Verify(tc.token)
			if tc.ok && err != nil {
				t.Fatalf("Verify refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify error = %v, want ErrInvalidToken", err)
			}
		})
	}
	// Once the old key is dropped its tokens stop verifying.
	dropped := newWithKeys(t, newEd, nil, testNow)
	if _, err := dropped.Verify(issue(oldEd)); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), `unknown kid "old-ed"`) {
		t.Fatalf("token of a dropped key: err = %v", err)
	}
	if _, err := dropped.Verify(issue(oldHS)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token of a dropped key: err = %v", err)
	}
	// New(secret) and NewWithKeys(HS256Key(same kid)) agree, so a deployment
	// can move from New to NewWithKeys without signing anybody out.
	legacy := newTokens(t, testNow)
	moved := newWithKeys(t, newEd, []auth.Key{hsKey(t, legacy.SigningKeyID(), secret)}, testNow)
	if _, err := moved.Verify(mustIssue(t, legacy)); err != nil {
		t.Fatalf("token of New(secret) refused after moving to NewWithKeys: %v", err)
	}
}

func mustIssue(t *testing.T, tk *auth.Tokens) string {
	t.Helper()
	tok, err := tk.Issue("a", auth.RoleViewer, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewWithKeysRefuses(t *testing.T) {
	k1 := hsKey(t, "k1", secret)
	ed, priv := edKey(t, "ed")
	pubOnly, err := auth.EdDSAPublicKey("pub", priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		signing    auth.Key
		verifyOnly []auth.Key
		opts       auth.Options
	}{
		"DuplicateKid":          {k1, []auth.Key{hsKey(t, "k1", []byte(strings.Repeat("z", 32)))}, auth.Options{}},
		"DuplicateKidAcrossAlg": {ed, []auth.Key{hsKey(t, "ed", secret)}, auth.Options{}},
		"ZeroSigningKey":        {auth.Key{}, nil, auth.Options{}},
		"VerifyOnlySigningKey":  {pubOnly, nil, auth.Options{}},
		"ZeroVerifyOnlyKey":     {k1, []auth.Key{{}}, auth.Options{}},
		"NegativeLeeway":        {k1, nil, auth.Options{Leeway: -time.Second}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.NewWithKeys(tc.signing, tc.verifyOnly, tc.opts); err == nil {
				t.Fatal("NewWithKeys succeeded")
			}
		})
	}
}
