package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

func mustCreateUser(t testing.TB, s *store.Store, nu store.NewUser) store.User {
	t.Helper()
	u, err := s.CreateUser(testContext(t), nu)
	if err != nil {
		t.Fatalf("CreateUser(%+v): %v", nu, err)
	}
	return u
}

func mustGetUser(t testing.TB, s *store.Store, id int64) store.User {
	t.Helper()
	u, err := s.GetUser(testContext(t), id)
	if err != nil {
		t.Fatalf("GetUser(%d): %v", id, err)
	}
	return u
}

func ptr[T any](v T) *T { return &v }

func wantUserNotFound(t *testing.T, err error) {
	t.Helper()
	var nf *store.NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, store.ErrNotFound) || nf.Entity != "user" {
		t.Errorf("err = %v, want a user *NotFoundError", err)
	}
}

func TestCreateAndGetUser(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		before := time.Now().UTC().Add(-time.Second)
		u := mustCreateUser(t, s, store.NewUser{Email: "  Ann@Example.io ", DisplayName: " Ann ", PasswordHash: "$argon2id$v=19$x", Role: auth.RoleEditor})
		t.Run("OK", func(t *testing.T) {
			if u.ID <= 0 || u.Email != "Ann@Example.io" || u.DisplayName != "Ann" || u.Role != auth.RoleEditor ||
				u.TokenGen != 1 || u.Disabled || u.PasswordHash != "$argon2id$v=19$x" || u.OIDCIssuer != "" {
				t.Errorf("CreateUser = %+v", u)
			}
			if u.CreatedAt != u.UpdatedAt || u.CreatedAt.Before(before) {
				t.Errorf("timestamps %v %v, want both now", u.CreatedAt, u.UpdatedAt)
			}
			if got := mustGetUser(t, s, u.ID); got != u {
				t.Errorf("GetUser = %+v, want %+v", got, u)
			}
		})
		t.Run("GetUserByEmailIgnoresCase", func(t *testing.T) {
			for _, email := range []string{"ann@example.io", "ANN@EXAMPLE.IO", " Ann@Example.io "} {
				got, err := s.GetUserByEmail(ctx, email)
				if err != nil || got != u {
					t.Errorf("GetUserByEmail(%q) = %+v, %v; want %+v", email, got, err, u)
				}
			}
		})
		t.Run("NotFound", func(t *testing.T) {
			_, err := s.GetUser(ctx, 424242)
			wantUserNotFound(t, err)
			_, err = s.GetUserByEmail(ctx, "nobody@example.io")
			wantUserNotFound(t, err)
			if strings.Contains(err.Error(), "nobody") {
				t.Errorf("error %q quotes the email", err)
			}
			_, err = s.GetUserByEmail(ctx, "")
			wantUserNotFound(t, err)
			_, err = s.GetUserByOIDC(ctx, "https://idp.example", "nobody")
			wantUserNotFound(t, err)
			_, err = s.GetUserByOIDC(ctx, "", "")
			wantUserNotFound(t, err)
		})
		t.Run("EmailConflictIgnoresCase", func(t *testing.T) {
			mustCreateUser(t, s, store.NewUser{Email: "A@x.io", DisplayName: "A", Role: auth.RoleViewer})
			_, err := s.CreateUser(ctx, store.NewUser{Email: "a@X.io", DisplayName: "B", Role: auth.RoleViewer})
			wantConflict(t, err, "user", "email", "x.io")
		})
		t.Run("OIDC", func(t *testing.T) {
			o := mustCreateUser(t, s, store.NewUser{DisplayName: "Oidc Only", Role: auth.RoleViewer,
				OIDCIssuer: "https://idp.example", OIDCSubject: "Sub-1"})
			if o.Email != "" || o.PasswordHash != "" {
				t.Errorf("OIDC-only user %+v, want no email and no password", o)
			}
			got, err := s.GetUserByOIDC(ctx, "https://idp.example", "Sub-1")
			if err != nil || got != o {
				t.Errorf("GetUserByOIDC = %+v, %v; want %+v", got, err, o)
			}
			// Subjects are case-sensitive: another case is another identity.
			if _, err := s.GetUserByOIDC(ctx, "https://idp.example", "sub-1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetUserByOIDC with the subject in lower case: err = %v, want ErrNotFound", err)
			}
			mustCreateUser(t, s, store.NewUser{DisplayName: "Other Case", Role: auth.RoleViewer,
				OIDCIssuer: "https://idp.example", OIDCSubject: "sub-1"})
			mustCreateUser(t, s, store.NewUser{DisplayName: "Other Issuer", Role: auth.RoleViewer,
				OIDCIssuer: "https://other.example", OIDCSubject: "Sub-1"})
			_, err = s.CreateUser(ctx, store.NewUser{DisplayName: "Dup", Role: auth.RoleViewer,
				OIDCIssuer: "https://idp.example", OIDCSubject: "Sub-1"})
			wantConflict(t, err, "user", "oidc_subject", "Sub-1")
		})
		t.Run("ManyUsersWithoutEmail", func(t *testing.T) {
			for i := range 3 {
				mustCreateUser(t, s, store.NewUser{DisplayName: "No Email", Role: auth.RoleViewer,
					OIDCIssuer: "https://many.example", OIDCSubject: strings.Repeat("s", i+1)})
			}
		})
	})
}

func TestCreateUserRefuses(t *testing.T) {
	valid := store.NewUser{Email: "v@example.io", DisplayName: "V", Role: auth.RoleViewer}
	with := func(f func(*store.NewUser)) store.NewUser { u := valid; f(&u); return u }
	tests := []struct {
		name   string
		user   store.NewUser
		fields []string
	}{
		{"NoEmailNoOIDC", with(func(u *store.NewUser) { u.Email = "  " }), []string{"Email"}},
		{"EmailWithName", with(func(u *store.NewUser) { u.Email = "Ann <ann@example.io>" }), []string{"Email"}},
		{"EmailAngleBrackets", with(func(u *store.NewUser) { u.Email = "<ann@example.io>" }), []string{"Email"}},
		{"EmailNoAt", with(func(u *store.NewUser) { u.Email = "ann.example.io" }), []string{"Email"}},
		{"EmailTooLong", with(func(u *store.NewUser) { u.Email = strings.Repeat("a", 250) + "@x.io" }), []string{"Email"}},
		{"EmailList", with(func(u *store.NewUser) { u.Email = "a@x.io, b@x.io" }), []string{"Email"}},
		{"DisplayNameEmpty", with(func(u *store.NewUser) { u.DisplayName = " " }), []string{"DisplayName"}},
		{"DisplayNameControl", with(func(u *store.NewUser) { u.DisplayName = "A\nB" }), []string{"DisplayName"}},
		{"DisplayNameTooLong", with(func(u *store.NewUser) { u.DisplayName = strings.Repeat("é", store.MaxDisplayNameLen+1) }), []string{"DisplayName"}},
		{"RoleEmpty", with(func(u *store.NewUser) { u.Role = "" }), []string{"Role"}},
		{"RoleUnknown", with(func(u *store.NewUser) { u.Role = "root" }), []string{"Role"}},
		{"OIDCSubjectWithoutIssuer", with(func(u *store.NewUser) { u.OIDCSubject = "s" }), []string{"OIDCIssuer"}},
		{"OIDCIssuerWithoutSubject", with(func(u *store.NewUser) { u.OIDCIssuer = "https://i" }), []string{"OIDCSubject"}},
		{"OIDCSubjectControl", with(func(u *store.NewUser) { u.OIDCIssuer, u.OIDCSubject = "https://i", "a\x00b" }), []string{"OIDCSubject"}},
		{"OIDCSubjectTooLong", with(func(u *store.NewUser) { u.OIDCIssuer, u.OIDCSubject = "https://i", strings.Repeat("s", 256) }), []string{"OIDCSubject"}},
		{"PasswordHashTooLong", with(func(u *store.NewUser) { u.PasswordHash = strings.Repeat("h", 256) }), []string{"PasswordHash"}},
		{"PasswordHashSpace", with(func(u *store.NewUser) { u.PasswordHash = "a b" }), []string{"PasswordHash"}},
		{"Several", store.NewUser{Email: "bad", DisplayName: "", Role: "x"}, []string{"Email", "DisplayName", "Role"}},
	}
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateUser(ctx, tt.user)
				var ve *store.ValidationError
				if !errors.As(err, &ve) || !errors.Is(err, store.ErrInvalidUser) || errors.Is(err, store.ErrInvalidBook) {
					t.Fatalf("err = %v, want a user *ValidationError", err)
				}
				var got []string
				for _, f := range ve.Fields {
					got = append(got, f.Field)
				}
				if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
					t.Errorf("fields %v, want %v", got, tt.fields)
				}
			})
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 0 {
			t.Errorf("CountUsers after refusals = %d, %v; want 0", n, err)
		}
	})
}

func TestListAndCountUsers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		var want []int64
		for i := range 5 {
			u := mustCreateUser(t, s, store.NewUser{Email: strings.Repeat("u", i+1) + "@x.io", DisplayName: "U", Role: auth.RoleViewer})
			want = append(want, u.ID)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 5 {
			t.Errorf("CountUsers = %d, %v; want 5", n, err)
		}
		var got []int64
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("ListUsers does not end")
			}
			users, next, err := s.ListUsers(ctx, store.UserListOptions{Limit: 2, AfterID: after})
			if err != nil {
				t.Fatalf("ListUsers: %v", err)
			}
			for _, u := range users {
				got = append(got, u.ID)
			}
			if next == 0 {
				break
			}
			after = next
		}
		if len(got) != len(want) || got[0] != want[0] || got[4] != want[4] {
			t.Errorf("walked ids %v, want %v", got, want)
		}
		users, next, err := s.ListUsers(ctx, store.UserListOptions{})
		if err != nil || len(users) != 5 || next != 0 {
			t.Errorf("ListUsers default = %d users, next %d, %v; want 5, 0", len(users), next, err)
		}
		for _, bad := range []store.UserListOptions{{Limit: -1}, {Limit: store.MaxUserLimit + 1}, {AfterID: -1}} {
			if _, _, err := s.ListUsers(ctx, bad); !errors.Is(err, store.ErrInvalidQuery) {
				t.Errorf("ListUsers(%+v): err = %v, want ErrInvalidQuery", bad, err)
			}
		}
	})
}

func TestUpdateUser(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		tests := []struct {
			name    string
			patch   store.UserPatch
			wantCut bool
		}{
			{"DisplayNameKeepsTokens", store.UserPatch{DisplayName: ptr("New Name")}, false},
			{"SameRoleKeepsTokens", store.UserPatch{Role: ptr(auth.RoleEditor)}, false},
			{"EnableKeepsTokens", store.UserPatch{Disabled: ptr(false)}, false},
			{"RoleChangeCuts", store.UserPatch{Role: ptr(auth.RoleAdmin)}, true},
			{"DisableCuts", store.UserPatch{Disabled: ptr(true)}, true},
			{"PasswordChangeCuts", store.UserPatch{PasswordHash: ptr("$new$hash")}, true},
			{"PasswordRemovalCuts", store.UserPatch{PasswordHash: ptr("")}, true},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				u := mustCreateUser(t, s, store.NewUser{Email: "upd" + string(rune('a'+i)) + "@x.io", DisplayName: "U",
					PasswordHash: "$old$hash", Role: auth.RoleEditor})
				live := newSession(t, s, u.ID)
				got, err := s.UpdateUser(ctx, u.ID, tt.patch)
				if err != nil {
					t.Fatalf("UpdateUser: %v", err)
				}
				if stored := mustGetUser(t, s, u.ID); stored != got {
					t.Errorf("UpdateUser returned %+v, stored %+v", got, stored)
				}
				wantGen := u.TokenGen
				if tt.wantCut {
					wantGen++
				}
				if got.TokenGen != wantGen {
					t.Errorf("TokenGen %d, want %d", got.TokenGen, wantGen)
				}
				_, err = s.RotateRefresh(ctx, store.RotateRequest{OldHash: live.hash, NewHash: randHash(t)})
				switch {
				case tt.wantCut && !errors.Is(err, store.ErrRefreshRevoked):
					t.Errorf("refresh after the change: err = %v, want ErrRefreshRevoked", err)
				case !tt.wantCut && err != nil:
					t.Errorf("refresh after the change: %v", err)
				}
			})
		}
		t.Run("Fields", func(t *testing.T) {
			u := mustCreateUser(t, s, store.NewUser{Email: "fields@x.io", DisplayName: "U", PasswordHash: "$h", Role: auth.RoleViewer})
			got, err := s.UpdateUser(ctx, u.ID, store.UserPatch{DisplayName: ptr("  Renamed "), Role: ptr(auth.RoleAdmin),
				Disabled: ptr(true), PasswordHash: ptr("")})
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			if got.DisplayName != "Renamed" || got.Role != auth.RoleAdmin || !got.Disabled || got.PasswordHash != "" ||
				got.TokenGen != 2 || got.Email != u.Email || got.CreatedAt != u.CreatedAt || got.UpdatedAt.Before(u.UpdatedAt) {
				t.Errorf("UpdateUser = %+v", got)
			}
		})
		t.Run("Refusals", func(t *testing.T) {
			u := mustCreateUser(t, s, store.NewUser{Email: "refuse@x.io", DisplayName: "U", Role: auth.RoleViewer})
			for name, patch := range map[string]store.UserPatch{
				"DisplayName":  {DisplayName: ptr("")},
				"Role":         {Role: ptr(auth.Role("owner"))},
				"PasswordHash": {PasswordHash: ptr("has space")},
			} {
				_, err := s.UpdateUser(ctx, u.ID, patch)
				var ve *store.ValidationError
				if !errors.As(err, &ve) || !errors.Is(err, store.ErrInvalidUser) || ve.Fields[0].Field != name {
					t.Errorf("%s: err = %v, want a ValidationError naming it", name, err)
				}
			}
			if got := mustGetUser(t, s, u.ID); got != u {
				t.Errorf("refused updates wrote: %+v", got)
			}
			_, err := s.UpdateUser(ctx, 424242, store.UserPatch{DisplayName: ptr("x")})
			wantUserNotFound(t, err)
		})
	})
}

func TestLinkOIDC(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		u := mustCreateUser(t, s, store.NewUser{Email: "link@x.io", DisplayName: "L", Role: auth.RoleViewer})
		got, err := s.LinkOIDC(ctx, u.ID, "https://idp.example", "sub")
		if err != nil {
			t.Fatalf("LinkOIDC: %v", err)
		}
		if got.OIDCIssuer != "https://idp.example" || got.OIDCSubject != "sub" || got.TokenGen != u.TokenGen {
			t.Errorf("LinkOIDC = %+v", got)
		}
		if byID, err := s.GetUserByOIDC(ctx, "https://idp.example", "sub"); err != nil || byID != got {
			t.Errorf("GetUserByOIDC = %+v, %v; want %+v", byID, err, got)
		}
		t.Run("SameIdentityIsNoOp", func(t *testing.T) {
			again, err := s.LinkOIDC(ctx, u.ID, "https://idp.example", "sub")
			if err != nil || again != got {
				t.Errorf("LinkOIDC again = %+v, %v; want %+v", again, err, got)
			}
		})
		t.Run("SecondIdentityIsErrOIDCLinked", func(t *testing.T) {
			_, err := s.LinkOIDC(ctx, u.ID, "https://idp.example", "other")
			if !errors.Is(err, store.ErrOIDCLinked) || !errors.Is(err, store.ErrConflict) {
				t.Errorf("err = %v, want ErrOIDCLinked", err)
			}
		})
		t.Run("IdentityOfAnotherUserIsConflict", func(t *testing.T) {
			v := mustCreateUser(t, s, store.NewUser{Email: "link2@x.io", DisplayName: "M", Role: auth.RoleViewer})
			_, err := s.LinkOIDC(ctx, v.ID, "https://idp.example", "sub")
			wantConflict(t, err, "user", "oidc_subject", "")
		})
		t.Run("Refusals", func(t *testing.T) {
			for name, id := range map[string][2]string{"OIDCIssuer": {"", "s"}, "OIDCSubject": {"https://i", "a\nb"}} {
				_, err := s.LinkOIDC(ctx, u.ID, id[0], id[1])
				var ve *store.ValidationError
				if !errors.As(err, &ve) || ve.Fields[0].Field != name {
					t.Errorf("%s: err = %v, want a ValidationError naming it", name, err)
				}
			}
			_, err := s.LinkOIDC(ctx, 424242, "https://i", "s")
			wantUserNotFound(t, err)
		})
	})
}
