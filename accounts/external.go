package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

// External is a person an OpenID Connect provider vouched for.
type External struct {
	Issuer, Subject string
	Email           string
	EmailVerified   bool
	Name            string
}

// ErrEmailTaken: an OIDC sign-in whose provider does not vouch for the
// email, which a password account already uses. Matched with errors.Is; the
// error is also a store.ConflictError on field "email".
var ErrEmailTaken = errors.New("an account with this email exists; sign in with its password")

// SignInExternal signs in the person behind an OIDC identity, creating a
// viewer account at their first sign-in.
//
// The linking rule: an identity is found by (issuer, subject), never by
// email. At a first sign-in, an existing account with the same email is
// linked only when the provider says the email is verified; otherwise the
// sign-in is refused with ErrEmailTaken, because anybody can claim any
// email at a provider that does not verify it, and linking would hand them
// the account.
func (s *Service) SignInExternal(ctx context.Context, e External) (Pair, error) {
	if e.Issuer == "" || e.Subject == "" {
		return Pair{}, errors.New("sign in: the provider gave no issuer or subject")
	}
	u, err := s.users.GetUserByOIDC(ctx, e.Issuer, e.Subject)
	switch {
	case err == nil:
	case !errors.Is(err, store.ErrNotFound):
		return Pair{}, fmt.Errorf("sign in: %w", err)
	default:
		if u, err = s.firstExternalSignIn(ctx, e); err != nil {
			return Pair{}, err
		}
	}
	if u.Disabled {
		return Pair{}, ErrDisabled
	}
	return s.signIn(ctx, u)
}

func (s *Service) firstExternalSignIn(ctx context.Context, e External) (store.User, error) {
	if e.Email != "" {
		existing, err := s.users.GetUserByEmail(ctx, e.Email)
		switch {
		case err == nil && e.EmailVerified:
			s.log.LogAttrs(ctx, slog.LevelInfo, "security: OIDC identity linked to an account by verified email",
				slog.Int64("user_id", existing.ID), slog.String("issuer", e.Issuer))
			return s.users.LinkOIDC(ctx, existing.ID, e.Issuer, e.Subject)
		case err == nil:
			return store.User{}, fmt.Errorf("%w: %w", ErrEmailTaken, &store.ConflictError{Entity: "user", Field: "email"})
		case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid):
			return store.User{}, fmt.Errorf("sign in: %w", err)
		}
	}
	name := e.Name
	if name == "" {
		name = e.Email
	}
	if name == "" {
		name = "OIDC user"
	}
	u, err := s.users.CreateUser(ctx, store.NewUser{Email: e.Email, DisplayName: name, Role: auth.RoleViewer,
		OIDCIssuer: e.Issuer, OIDCSubject: e.Subject})
	if errors.Is(err, store.ErrConflict) {
		// A concurrent first sign-in of the same identity created it.
		return s.users.GetUserByOIDC(ctx, e.Issuer, e.Subject)
	}
	return u, err
}
