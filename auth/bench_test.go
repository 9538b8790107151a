package auth_test

import (
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
)

// BenchmarkVerify is the per-request cost of authentication.
func BenchmarkVerify(b *testing.B) {
	ed, _ := edKey(b, "ed")
	for name, tk := range map[string]*auth.Tokens{
		"HS256": newTokens(b, time.Now()),
		"EdDSA": newWithKeys(b, ed, nil, time.Now()),
	} {
		b.Run(name, func(b *testing.B) {
			tok, err := tk.Issue("bench", auth.RoleEditor, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tk.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIssue is the cost of minting (login and refresh).
func BenchmarkIssue(b *testing.B) {
	ed, _ := edKey(b, "ed")
	for name, tk := range map[string]*auth.Tokens{
		"HS256": newTokens(b, time.Now()),
		"EdDSA": newWithKeys(b, ed, nil, time.Now()),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tk.IssueAccess(auth.Claims{Subject: "bench", Role: auth.RoleEditor, Session: "s", Generation: 3}, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPasswordHash is the cost of one login with OWASP's parameters;
// Verify costs the same.
func BenchmarkPasswordHash(b *testing.B) {
	p := newPasswords(b, auth.Argon2Params{})
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPassword is the cost of the policy, dominated by the
// deny-list scan.
func BenchmarkCheckPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = auth.CheckPassword("correct horse battery staple", "alice@example.com", "Alice")
	}
}
