package accounts_test

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

func TestLoginRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleEditor)
	oidc, err := e.svc.SignInExternal(testContext(t), accounts.External{Issuer: "https://idp.test", Subject: "s1",
		Email: "oidc@example.com", EmailVerified: true, Name: "O"})
	if err != nil {
		t.Fatal(err)
	}
	_ = oidc
	off := e.user(t, "off@example.com", auth.RoleViewer)
	ctx := testContext(t)
	yes := true
	if _, err := e.svc.UpdateUser(ctx, auth.Identity{Subject: "cli", Role: auth.RoleAdmin}, off.ID, accounts.Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, email, password string
		want                  error
	}{
		{"unknown email", "nobody@example.com", goodPassword, accounts.ErrBadCredentials},
		{"wrong password", "ada@example.com", "not the password at all", accounts.ErrBadCredentials},
		{"email of another case still needs the password", "ADA@example.com", "nope nope nope", accounts.ErrBadCredentials},
		{"account without a password", "oidc@example.com", goodPassword, accounts.ErrBadCredentials},
		{"malformed email", "not an email", goodPassword, accounts.ErrBadCredentials},
		{"disabled, right password", "off@example.com", goodPassword, accounts.ErrDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Login(ctx, tc.email, tc.password, "192.0.2.1")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Login = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("case-insensitive email", func(t *testing.T) {
		if _, err := e.svc.Login(ctx, "Ada@Example.COM", goodPassword, "192.0.2.1"); err != nil {
			t.Fatalf("Login: %v", err)
		}
	})
}

func TestLoginIssuesVerifiableTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	u := e.user(t, "ada@example.com", auth.RoleEditor)
	p := e.login(t, "ada@example.com")
	id, err := e.svc.Verify(p.AccessToken)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Subject != accounts.Subject(u.ID) || id.Role != auth.RoleEditor || id.Session == "" || id.Generation != u.TokenGen {
		t.Fatalf("identity = %+v, user %+v", id, u)
	}
	// exp has whole seconds.
	if got := p.AccessExpiresAt.Sub(e.clock.Now()); got <= 15*time.Minute-time.Second || got > 15*time.Minute {
		t.Fatalf("access token lives %s, want 15m", got)
	}
	if _, err := e.svc.Verify(p.RefreshToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("a refresh token used as an access token: %v, want ErrInvalidToken", err)
	}
}

func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	first := e.login(t, "ada@example.com")
	second, err := e.svc.Refresh(ctx, first.RefreshToken, "192.0.2.1")
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate the token")
	}
	// Past the grace window, the old token again is reuse: the family dies.
	e.clock.Advance(time.Minute)
	if _, err := e.svc.Refresh(ctx, first.RefreshToken, "192.0.2.1"); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Fatalf("reuse: %v, want ErrRefreshInvalid", err)
	}
	if !e.logs.contains("security: refresh token reused") {
		t.Fatal("reuse was not logged as a security event")
	}
	if _, err := e.svc.Refresh(ctx, second.RefreshToken, "192.0.2.1"); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Fatalf("the successor after reuse: %v, want ErrRefreshInvalid (family revoked)", err)
	}
	if _, err := e.svc.Verify(second.AccessToken); !errors.Is(err, accounts.ErrRevoked) {
		t.Fatalf("access token of the revoked family: %v, want ErrRevoked", err)
	}
	select {
	case r := <-e.revoked:
		if r.Session == "" {
			t.Fatalf("revocation %+v names no session", r)
		}
	default:
		t.Fatal("reuse did not reach OnRevoke")
	}
}

func TestRefreshGraceForALostResponse(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	first := e.login(t, "ada@example.com")
	lost, err := e.svc.Refresh(ctx, first.RefreshToken, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	retry, err := e.svc.Refresh(ctx, first.RefreshToken, "192.0.2.1")
	if err != nil {
		t.Fatalf("retry within grace: %v", err)
	}
	if _, err := e.svc.Refresh(ctx, retry.RefreshToken, "192.0.2.1"); err != nil {
		t.Fatalf("the retry's successor: %v", err)
	}
	_ = lost
}

func TestLogoutRevokesTheSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	a := e.login(t, "ada@example.com")
	b := e.login(t, "ada@example.com") // another device
	if err := e.svc.Logout(ctx, a.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Refresh(ctx, a.RefreshToken, "192.0.2.1"); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Fatalf("refresh after logout: %v", err)
	}
	if _, err := e.svc.Verify(a.AccessToken); !errors.Is(err, accounts.ErrRevoked) {
		t.Fatalf("access token after logout: %v, want ErrRevoked", err)
	}
	if _, err := e.svc.Verify(b.AccessToken); err != nil {
		t.Fatalf("the other device's token: %v", err)
	}
	for _, tok := range []string{a.RefreshToken, "garbage", ""} {
		if err := e.svc.Logout(ctx, tok); err != nil {
			t.Fatalf("Logout(%q) again = %v, want nil (idempotent)", tok, err)
		}
	}
}

func TestRoleChangeAndDisableCutAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	admin := e.user(t, "root@example.com", auth.RoleAdmin)
	u := e.user(t, "ada@example.com", auth.RoleEditor)
	ctx := testContext(t)
	actor := auth.Identity{Subject: accounts.Subject(admin.ID), Role: auth.RoleAdmin}
	p := e.login(t, "ada@example.com")
	viewer := auth.RoleViewer
	changed, err := e.svc.UpdateUser(ctx, actor, u.ID, accounts.Change{Role: &viewer})
	if err != nil {
		t.Fatal(err)
	}
	if changed.Role != auth.RoleViewer || changed.TokenGen <= u.TokenGen {
		t.Fatalf("after role change: %+v", changed)
	}
	if _, err := e.svc.Verify(p.AccessToken); !errors.Is(err, accounts.ErrRevoked) {
		t.Fatalf("old access token after role change: %v, want ErrRevoked", err)
	}
	if _, err := e.svc.Refresh(ctx, p.RefreshToken, "192.0.2.1"); !errors.Is(err, accounts.ErrRefreshInvalid) {
		t.Fatalf("old refresh token after role change: %v", err)
	}
	// A new sign-in works at once and carries the new role.
	p2 := e.login(t, "ada@example.com")
	id, err := e.svc.Verify(p2.AccessToken)
	if err != nil || id.Role != auth.RoleViewer {
		t.Fatalf("new token: %+v, %v", id, err)
	}
	yes := true
	if _, err := e.svc.UpdateUser(ctx, actor, u.ID, accounts.Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Verify(p2.AccessToken); !errors.Is(err, accounts.ErrRevoked) {
		t.Fatalf("token of a disabled user: %v, want ErrRevoked", err)
	}
	// Entries outlive the tokens they cover, and no longer.
	e.clock.Advance(16 * time.Minute)
	if _, err := e.svc.Verify(p2.AccessToken); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestAdminsCannotLockThemselvesOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	admin := e.user(t, "root@example.com", auth.RoleAdmin)
	actor := auth.Identity{Subject: accounts.Subject(admin.ID), Role: auth.RoleAdmin}
	viewer, yes := auth.RoleViewer, true
	for _, c := range []accounts.Change{{Role: &viewer}, {Disabled: &yes}} {
		if _, err := e.svc.UpdateUser(testContext(t), actor, admin.ID, c); !errors.Is(err, accounts.ErrSelfChange) {
			t.Fatalf("self change %+v: %v, want ErrSelfChange", c, err)
		}
	}
}

func TestRegister(t *testing.T) {
	ctx := testContext(t)
	closed := newEnv(t, envOptions{})
	if _, err := closed.svc.Register(ctx, accounts.Registration{Email: "a@example.com", DisplayName: "A",
		Password: goodPassword}); !errors.Is(err, accounts.ErrRegistrationClosed) {
		t.Fatalf("closed registration: %v", err)
	}
	e := newEnv(t, envOptions{registration: true})
	p, err := e.svc.Register(ctx, accounts.Registration{Email: "a@example.com", DisplayName: "A", Password: goodPassword})
	if err != nil {
		t.Fatal(err)
	}
	if p.User.Role != auth.RoleViewer {
		t.Fatalf("registered role %q, want viewer", p.User.Role)
	}
	for _, tc := range []struct {
		name string
		r    accounts.Registration
		want error
	}{
		{"common password", accounts.Registration{Email: "b@example.com", DisplayName: "B", Password: "password123"}, auth.ErrWeakPassword},
		{"short password", accounts.Registration{Email: "b@example.com", DisplayName: "B", Password: "x7#k"}, auth.ErrWeakPassword},
		{"password is the email", accounts.Registration{Email: "bobby.tables@example.com", DisplayName: "B", Password: "bobby.tables@example.com"}, auth.ErrWeakPassword},
		{"taken email, other case", accounts.Registration{Email: "A@EXAMPLE.com", DisplayName: "A2", Password: goodPassword}, store.ErrConflict},
		{"bad email", accounts.Registration{Email: "nope", DisplayName: "B", Password: goodPassword}, store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Register(ctx, tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Register = %v, want %v", err, tc.want)
			}
			var ce *store.ConflictError
			if errors.As(err, &ce) && ce.Field != "email" {
				t.Fatalf("conflict on %q, want email", ce.Field)
			}
		})
	}
}

func TestLoginRateLimits(t *testing.T) {
	e := newEnv(t, envOptions{limits: func(c *testenv.Clock) accounts.Limits {
		acct, err := authstate.NewMemoryLimiter(authstate.Limit{Requests: 3, Window: time.Minute}, authstate.LimiterOptions{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := authstate.NewMemoryLimiter(authstate.Limit{Requests: 5, Window: time.Minute}, authstate.LimiterOptions{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		return accounts.Limits{LoginAccount: acct, LoginAddress: addr}
	}})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	for i := 0; i < 3; i++ {
		if _, err := e.svc.Login(ctx, "ada@example.com", "wrong password!!", "192.0.2.1"); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	_, err := e.svc.Login(ctx, "ADA@example.com", goodPassword, "192.0.2.9")
	var rl *accounts.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Minute {
		t.Fatalf("4th try on the account: %v, want RateLimitedError with 0 < RetryAfter <= 1m", err)
	}
	// Per address: other accounts from the same address run out too.
	for i := 0; i < 2; i++ {
		_, _ = e.svc.Login(ctx, "other"+string(rune('a'+i))+"@example.com", "whatever password", "192.0.2.1")
	}
	if _, err := e.svc.Login(ctx, "third@example.com", "whatever password", "192.0.2.1"); !errors.Is(err, accounts.ErrRateLimited) {
		t.Fatalf("6th try from one address: %v, want ErrRateLimited", err)
	}
}

// TestFailedLoginTiming checks that an unknown email and a wrong password
// cost the same, over many tries (medians, so one slow scheduling pause
// decides nothing).
func TestFailedLoginTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison skipped in -short mode")
	}
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	const tries = 41
	median := func(email string) time.Duration {
		d := make([]time.Duration, tries)
		for i := range d {
			start := time.Now()
			if _, err := e.svc.Login(ctx, email, "wrong password!!", "192.0.2.1"); !errors.Is(err, accounts.ErrBadCredentials) {
				t.Fatalf("login %s: %v", email, err)
			}
			d[i] = time.Since(start)
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[tries/2]
	}
	// Interleave warm-up, then measure both.
	_ = median("nobody@example.com")
	known, unknown := median("ada@example.com"), median("nobody@example.com")
	diff := known - unknown
	if diff < 0 {
		diff = -diff
	}
	larger := max(known, unknown)
	if diff > larger/4+time.Millisecond {
		t.Fatalf("median failed login: known email %s, unknown %s: differ by more than 25%%", known, unknown)
	}
}

func TestTicketsAreSingleUse(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.user(t, "ada@example.com", auth.RoleViewer)
	ctx := testContext(t)
	p := e.login(t, "ada@example.com")
	tk, err := e.svc.IssueTicket(ctx, p.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.svc.RedeemTicket(ctx, tk.Value)
	if err != nil || id.Subject != accounts.Subject(p.User.ID) {
		t.Fatalf("redeem: %+v %v", id, err)
	}
	if _, err := e.svc.RedeemTicket(ctx, tk.Value); !errors.Is(err, accounts.ErrTicketInvalid) {
		t.Fatalf("second redeem: %v, want ErrTicketInvalid", err)
	}
	// A ticket dies with its session.
	tk2, err := e.svc.IssueTicket(ctx, p.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Logout(ctx, p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RedeemTicket(ctx, tk2.Value); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("ticket after logout: %v, want ErrInvalidToken", err)
	}
}

func TestSignInExternal(t *testing.T) {
	e := newEnv(t, envOptions{})
	pw := e.user(t, "ada@example.com", auth.RoleEditor)
	ctx := testContext(t)
	ext := accounts.External{Issuer: "https://idp.test", Subject: "sub-1", Email: "new@example.com", EmailVerified: true, Name: "New"}
	first, err := e.svc.SignInExternal(ctx, ext)
	if err != nil {
		t.Fatal(err)
	}
	if first.User.Role != auth.RoleViewer || first.User.PasswordHash != "" {
		t.Fatalf("first sign-in created %+v, want a viewer without password", first.User)
	}
	again, err := e.svc.SignInExternal(ctx, ext)
	if err != nil || again.User.ID != first.User.ID {
		t.Fatalf("second sign-in: %+v %v, want the same user", again.User, err)
	}
	// Unverified email of an existing account: refused, not merged.
	_, err = e.svc.SignInExternal(ctx, accounts.External{Issuer: "https://idp.test", Subject: "sub-2", Email: "ADA@example.com", Name: "Mallory"})
	if !errors.Is(err, accounts.ErrEmailTaken) {
		t.Fatalf("unverified email of an existing account: %v, want ErrEmailTaken", err)
	}
	// Verified: linked to the existing account, role kept.
	linked, err := e.svc.SignInExternal(ctx, accounts.External{Issuer: "https://idp.test", Subject: "sub-3", Email: "ada@example.com", EmailVerified: true})
	if err != nil || linked.User.ID != pw.ID || linked.User.Role != auth.RoleEditor {
		t.Fatalf("verified email: %+v %v, want user %d linked", linked.User, err, pw.ID)
	}
	if _, err := e.svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatalf("password login after linking: %v", err)
	}
}

func TestEnsureAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := testContext(t)
	created, err := e.svc.EnsureAdmin(ctx, "root@example.com", goodPassword)
	if err != nil || !created {
		t.Fatalf("first EnsureAdmin: %v %v", created, err)
	}
	created, err = e.svc.EnsureAdmin(ctx, "root@example.com", "another password entirely")
	if err != nil || created {
		t.Fatalf("second EnsureAdmin: %v %v, want untouched", created, err)
	}
	p := e.login(t, "root@example.com")
	if p.User.Role != auth.RoleAdmin {
		t.Fatalf("bootstrap role %q", p.User.Role)
	}
	if _, err := e.svc.EnsureAdmin(ctx, "weak@example.com", "password"); !errors.Is(err, auth.ErrWeakPassword) {
		t.Fatalf("weak bootstrap password: %v", err)
	}
}
