package auth_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func newTokens(t testing.TB, now time.Time) *auth.Tokens {
	t.Helper()
	tk, err := auth.New(secret, auth.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return tk
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
		"NegativeTTL": func() error {
			_, _, err := tk.IssueAccess(auth.Claims{Subject: "a", Role: auth.RoleViewer}, -time.Second)
			return err
		},
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
	if r, err := auth.ParseRole("admin"); err != nil || r != auth.RoleAdmin {
		t.Fatalf("ParseRole(admin) = %q, %v", r, err)
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
