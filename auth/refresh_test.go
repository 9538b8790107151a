package auth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/auth"
)

func TestNewRefreshToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, err := auth.NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "bhr_"))
		if !strings.HasPrefix(tok, "bhr_") || err != nil || len(raw) != 32 {
			t.Fatalf("refresh token %q is not bhr_ + 32 bytes of base64url", tok)
		}
		if !auth.LooksLikeRefreshToken(tok) {
			t.Fatalf("LooksLikeRefreshToken(%q) = false", tok)
		}
		if seen[tok] {
			t.Fatalf("refresh token %q twice", tok)
		}
		seen[tok] = true
	}
}

func TestLooksLikeRefreshToken(t *testing.T) {
	good, err := auth.NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	access := mustIssue(t, newTokens(t, testNow))
	for name, tc := range map[string]struct {
		s    string
		want bool
	}{
		"Good":        {good, true},
		"Empty":       {"", false},
		"PrefixOnly":  {"bhr_", false},
		"Short":       {good[:len(good)-1], false},
		"Long":        {good + "A", false},
		"OtherPrefix": {"bhx_" + good[4:], false},
		"BadAlphabet": {good[:len(good)-1] + "+", false},
		"AccessToken": {access, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := auth.LooksLikeRefreshToken(tc.s); got != tc.want {
				t.Fatalf("LooksLikeRefreshToken(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestHashRefreshToken(t *testing.T) {
	tok, err := auth.NewRefreshToken()
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(tok))
	got := auth.HashRefreshToken(tok)
	if !bytes.Equal(got, want[:]) || !bytes.Equal(got, auth.HashRefreshToken(tok)) {
		t.Fatalf("HashRefreshToken = %x, want %x", got, want)
	}
	if bytes.Equal(got, auth.HashRefreshToken(tok+"x")) {
		t.Fatal("different tokens share a hash")
	}
}

func TestNewSessionID(t *testing.T) {
	a, err := auth.NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := auth.NewSessionID()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 16 || a == b {
		t.Fatalf("session ids %q, %q: want distinct 128-bit base64url (%v)", a, b, err)
	}
}
