package auth_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bookhub/bookhub/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func newTokens(t *testing.T, now time.Time) *auth.Tokens {
	t.Helper()
	tk, err := auth.New(secret, auth.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestIssueVerify(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tk := newTokens(t, now)
	tok, err := tk.Issue("alice", auth.RoleEditor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tk.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice" || id.Role != auth.RoleEditor || !id.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("identity = %+v", id)
	}
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tk := newTokens(t, now)
	sign := func(method jwt.SigningMethod, key any, c jwt.MapClaims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": "a", "role": "admin", "exp": now.Add(time.Hour).Unix()}
	expired, _ := tk.Issue("a", auth.RoleAdmin, time.Minute)
	later := newTokens(t, now.Add(time.Hour))
	cases := map[string]struct {
		verifier *auth.Tokens
		token    string
		want     error
	}{
		"ErrMissingToken": {tk, "", auth.ErrMissingToken},
		"Malformed":       {tk, "not.a.jwt", auth.ErrInvalidToken},
		"WrongSecret":     {tk, sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), valid), auth.ErrInvalidToken},
		"AlgNone":         {tk, sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid), auth.ErrInvalidToken},
		"AlgHS512":        {tk, sign(jwt.SigningMethodHS512, secret, valid), auth.ErrInvalidToken},
		"Expired":         {later, expired, auth.ErrInvalidToken},
		"NoExp":           {tk, sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "role": "admin"}), auth.ErrInvalidToken},
		"NoSub":           {tk, sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"role": "admin", "exp": now.Add(time.Hour).Unix()}), auth.ErrInvalidToken},
		"UnknownRole":     {tk, sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "role": "root", "exp": now.Add(time.Hour).Unix()}), auth.ErrInvalidToken},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := tc.verifier.Verify(tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewRejectsShortSecret(t *testing.T) {
	if _, err := auth.New([]byte("short"), auth.Options{}); err == nil {
		t.Fatal("New accepted a 5-byte secret")
	}
}

func TestIssueRejects(t *testing.T) {
	tk := newTokens(t, time.Now())
	for name, f := range map[string]func() error{
		"EmptySubject": func() error { _, err := tk.Issue("", auth.RoleViewer, time.Hour); return err },
		"UnknownRole":  func() error { _, err := tk.Issue("a", "root", time.Hour); return err },
		"ZeroTTL":      func() error { _, err := tk.Issue("a", auth.RoleViewer, 0); return err },
	} {
		t.Run(name, func(t *testing.T) {
			if f() == nil {
				t.Fatal("Issue succeeded")
			}
		})
	}
}

func TestRoles(t *testing.T) {
	if !auth.RoleAdmin.AtLeast(auth.RoleEditor) || auth.RoleViewer.AtLeast(auth.RoleEditor) || auth.Role("x").AtLeast(auth.RoleViewer) {
		t.Fatal("role ranking is wrong")
	}
	if _, err := auth.ParseRole("owner"); err == nil || !strings.Contains(err.Error(), "viewer") {
		t.Fatalf("ParseRole(owner) error = %v", err)
	}
}

func TestFromRequest(t *testing.T) {
	cases := []struct {
		name, header, url, want, wantHeaderOnly string
	}{
		{"Bearer", "Bearer abc", "/ws", "abc", "abc"},
		{"BearerCaseInsensitive", "bearer abc", "/ws", "abc", "abc"},
		{"Query", "", "/ws?token=q", "q", ""},
		{"HeaderWins", "Bearer h", "/ws?token=q", "h", "h"},
		{"OtherScheme", "Basic xyz", "/ws?token=q", "", ""},
		{"None", "", "/ws", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			if got := auth.FromRequest(r); got != tc.want {
				t.Errorf("FromRequest = %q, want %q", got, tc.want)
			}
			if got := auth.FromHeader(r); got != tc.wantHeaderOnly {
				t.Errorf("FromHeader = %q, want %q", got, tc.wantHeaderOnly)
			}
		})
	}
}
