package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Open's last line of defence is redact; ordinary driver errors never hold
// the password, so it is tested here directly.
func TestRedact(t *testing.T) {
	const pw = "Sup3rS3cret"
	tests := []struct {
		name      string
		err       error
		password  string
		wantText  string
		wantIsCtx bool
	}{
		{"NilStaysNil", nil, pw, "", false},
		{"CleanErrorKeepsChain", fmt.Errorf("ping: %w", context.DeadlineExceeded), pw, "ping: context deadline exceeded", true},
		{"NoPasswordNothingToHide", fmt.Errorf("ping: %w", context.DeadlineExceeded), "", "ping: context deadline exceeded", true},
		{"PasswordMasked", fmt.Errorf("dial app:%s@db: %w", pw, context.DeadlineExceeded), pw, "dial app:xxxxx@db: context deadline exceeded", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact(tt.err, tt.password)
			if tt.err == nil {
				if got != nil {
					t.Fatalf("redact(nil) = %v", got)
				}
				return
			}
			if got.Error() != tt.wantText {
				t.Errorf("text = %q, want %q", got.Error(), tt.wantText)
			}
			if errors.Is(got, context.DeadlineExceeded) != tt.wantIsCtx {
				t.Errorf("errors.Is(DeadlineExceeded) = %v, want %v", !tt.wantIsCtx, tt.wantIsCtx)
			}
			for e := got; e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), pw) {
					t.Fatalf("chain exposes the password: %q", e)
				}
			}
		})
	}
}

func TestPasswordRegion(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"mysql://app:pw@db/x", "pw"},
		{"mysql://app@db/x", ""},
		{"app:p@w@tcp(db)/x", "p@w"},
		{"books.db", ""},
		{"mysql://app:a/b?c@db/x", "a/b?c"},
	}
	for _, tt := range tests {
		if got := passwordRegion(tt.raw); got != tt.want {
			t.Errorf("passwordRegion(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}
