package accounts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

// errBadRole is a validation error of the store's kind, so transports
// report it like every other field.
var errBadRole = &store.ValidationError{Entity: "user",
	Fields: []store.FieldError{{Field: "Role", Message: "must be viewer, editor or admin"}}}

// NewUser is an operator's request to create an account.
type NewUser struct {
	Email, DisplayName, Password string
	Role                         auth.Role
}

// CreateUser creates an account with a password and a role (admins only;
// the transport checks the caller's role).
func (s *Service) CreateUser(ctx context.Context, u NewUser) (store.User, error) {
	if !u.Role.Valid() {
		return store.User{}, errBadRole
	}
	return s.createPasswordUser(ctx, u.Email, u.DisplayName, u.Password, u.Role)
}

// ListUsers returns a page of users, ordered by id.
func (s *Service) ListUsers(ctx context.Context, opts store.UserListOptions) ([]store.User, int64, error) {
	return s.users.ListUsers(ctx, opts)
}

// User returns one user.
func (s *Service) User(ctx context.Context, id int64) (store.User, error) {
	return s.users.GetUser(ctx, id)
}

// Me returns the user a verified identity speaks for.
func (s *Service) Me(ctx context.Context, id auth.Identity) (store.User, error) {
	uid, ok := UserID(id.Subject)
	if !ok {
		return store.User{}, ErrNotAUser
	}
	u, err := s.users.GetUser(ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrNotAUser
	}
	return u, err
}

// Change is an operator's change to an account; nil fields stay.
type Change struct {
	DisplayName *string
	Role        *auth.Role
	Disabled    *bool
}

// UpdateUser applies an operator's change. A new role or a disable takes
// effect at once: the store revokes the user's sessions and bumps the token
// generation, and the revocation list cuts off the access tokens already
// out, on every instance (which also closes the user's sockets).
func (s *Service) UpdateUser(ctx context.Context, actor auth.Identity, id int64, c Change) (store.User, error) {
	if uid, ok := UserID(actor.Subject); ok && uid == id {
		if (c.Role != nil && *c.Role != actor.Role) || (c.Disabled != nil && *c.Disabled) {
			return store.User{}, ErrSelfChange
		}
	}
	if c.Role != nil && !c.Role.Valid() {
		return store.User{}, errBadRole
	}
	before, err := s.users.GetUser(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	u, err := s.users.UpdateUser(ctx, id, store.UserPatch{DisplayName: c.DisplayName, Role: c.Role, Disabled: c.Disabled})
	if err != nil {
		return store.User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	if u.TokenGen != before.TokenGen {
		s.log.LogAttrs(ctx, slog.LevelInfo, "security: user access changed; tokens revoked",
			slog.Int64("user_id", id), slog.String("by", actor.Subject),
			slog.String("role", string(u.Role)), slog.Bool("disabled", u.Disabled))
		if err := s.revs.Revoke(ctx, Revocation{Subject: Subject(id), MinGeneration: u.TokenGen,
			Until: s.revocationUntil()}); err != nil {
			// The store change stands (sessions are dead); the local entry
			// holds; say that other instances may not know yet.
			s.log.LogAttrs(ctx, slog.LevelError, "revocation not shared", slog.Int64("user_id", id),
				slog.String("error", err.Error()))
		}
	}
	return u, nil
}

// EnsureAdmin creates the first admin at start (BOOKHUB_BOOTSTRAP_ADMIN_*)
// unless an account with that email exists already, which it leaves alone:
// the variables are for the first start and must not reset anything later.
func (s *Service) EnsureAdmin(ctx context.Context, email, password string) (created bool, err error) {
	if _, err := s.users.GetUserByEmail(ctx, email); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	if _, err := s.createPasswordUser(ctx, email, "Administrator", password, auth.RoleAdmin); err != nil {
		if errors.Is(err, store.ErrConflict) { // another instance won the race
			return false, nil
		}
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	return true, nil
}
