package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/bookhub/bookhub/auth"
)

// User is an account as bookhub keeps it.
type User struct {
	ID int64
	// Email is the address as given, trimmed; "" for an OIDC-only account.
	// Lookups and uniqueness ignore its case.
	Email       string
	DisplayName string
	// PasswordHash is the encoded hash the auth layer wrote; "" means the
	// account cannot sign in with a password.
	PasswordHash string
	Role         auth.Role
	Disabled     bool
	// TokenGen starts at 1 and is bumped whenever the role, the password or
	// a disabling changes what the account may do: an access token minted
	// for an older generation is no longer honoured.
	TokenGen uint64
	// OIDCIssuer and OIDCSubject identify the account at an OpenID
	// provider; both "" when it has none.
	OIDCIssuer  string
	OIDCSubject string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewUser is what CreateUser needs. Its fields follow the rules of
// user_validate.go; a *ValidationError names them by these Go names.
type NewUser struct {
	Email        string
	DisplayName  string
	PasswordHash string
	Role         auth.Role
	OIDCIssuer   string
	OIDCSubject  string
}

// UserPatch lists the changes UpdateUser makes; nil fields stay as they are.
type UserPatch struct {
	DisplayName *string
	Role        *auth.Role
	Disabled    *bool
	// PasswordHash "" removes the password.
	PasswordHash *string
}

// UserListOptions select a page of ListUsers.
type UserListOptions struct {
	// Limit is the page size: 0 means DefaultUserLimit; negative or above
	// MaxUserLimit is ErrInvalidQuery.
	Limit int64
	// AfterID is the nextAfterID of the previous page; 0 starts at the
	// beginning.
	AfterID int64
}

// Page limits of ListUsers.
const (
	DefaultUserLimit = 50
	MaxUserLimit     = 200
)

// ErrOIDCLinked: LinkOIDC was asked to give an account a second identity.
// It matches ErrConflict.
var ErrOIDCLinked error = &kindError{msg: "user is linked to another oidc identity", kind: ErrConflict}

// userRow is the gorm mapping of the users table; it never leaves the
// package. Optional values are NULL, not "", so the unique indexes admit any
// number of accounts without an email or an OIDC identity.
type userRow struct {
	ID           int64     `gorm:"column:id;primaryKey;autoIncrement"`
	Email        *string   `gorm:"column:email"`
	EmailKey     *string   `gorm:"column:email_key"`
	DisplayName  string    `gorm:"column:display_name"`
	PasswordHash *string   `gorm:"column:password_hash"`
	Role         string    `gorm:"column:role"`
	Disabled     bool      `gorm:"column:disabled"`
	TokenGen     uint64    `gorm:"column:token_gen"`
	OIDCIssuer   *string   `gorm:"column:oidc_issuer"`
	OIDCSubject  *string   `gorm:"column:oidc_subject"`
	CreatedAt    time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt    time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

// TableName pins the table name so gorm's naming strategy cannot move it.
func (userRow) TableName() string { return "users" }

func toUser(r userRow) User {
	return User{
		ID:           r.ID,
		Email:        deref(r.Email),
		DisplayName:  r.DisplayName,
		PasswordHash: deref(r.PasswordHash),
		Role:         auth.Role(r.Role),
		Disabled:     r.Disabled,
		TokenGen:     r.TokenGen,
		OIDCIssuer:   deref(r.OIDCIssuer),
		OIDCSubject:  deref(r.OIDCSubject),
		CreatedAt:    r.CreatedAt.UTC(),
		UpdatedAt:    r.UpdatedAt.UTC(),
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// nullable maps "" to NULL.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// userKey is the Key of a user's NotFoundError.
func userKey(id int64) string { return fmt.Sprintf("id %d", id) }

// CreateUser inserts an account and returns it as stored: normalized (see
// user_validate.go), with its new ID, TokenGen 1 and CreatedAt = UpdatedAt
// = now. A user that breaks a rule yields a *ValidationError
// (ErrInvalidUser); an email taken in any letter case yields
// &ConflictError{Entity: "user", Field: "email"}, a taken OIDC identity
// &ConflictError{Entity: "user", Field: "oidc_subject"}.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	nu, err := nu.normalize()
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	now := s.now()
	row := userRow{
		Email:        nullable(nu.Email),
		EmailKey:     nullable(emailKey(nu.Email)),
		DisplayName:  nu.DisplayName,
		PasswordHash: nullable(nu.PasswordHash),
		Role:         string(nu.Role),
		TokenGen:     1,
		OIDCIssuer:   nullable(nu.OIDCIssuer),
		OIDCSubject:  nullable(nu.OIDCSubject),
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return User{}, fmt.Errorf("create user: %w", translate(err))
	}
	return toUser(row), nil
}

// GetUser returns the account with that id, or a *NotFoundError.
func (s *Store) GetUser(ctx context.Context, id int64) (User, error) {
	var row userRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return User{}, fmt.Errorf("get user %d: %w", id, notFound(err, "user", userKey(id)))
	}
	return toUser(row), nil
}

// GetUserByEmail returns the account with that email in any letter case
// (surrounding white space ignored), or a *NotFoundError. The error text
// does not contain the address.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (User, error) {
	key := emailKey(strings.TrimSpace(email))
	if key == "" {
		return User{}, fmt.Errorf("get user by email: %w", &NotFoundError{Entity: "user", Key: "email"})
	}
	var row userRow
	if err := s.db.WithContext(ctx).Where("email_key = ?", key).Take(&row).Error; err != nil {
		return User{}, fmt.Errorf("get user by email: %w", notFound(err, "user", "email"))
	}
	return toUser(row), nil
}

// GetUserByOIDC returns the account linked to that identity (compared
// exactly), or a *NotFoundError.
func (s *Store) GetUserByOIDC(ctx context.Context, issuer, subject string) (User, error) {
	if issuer == "" || subject == "" {
		return User{}, fmt.Errorf("get user by oidc identity: %w", &NotFoundError{Entity: "user", Key: "oidc identity"})
	}
	var row userRow
	err := s.db.WithContext(ctx).Where("oidc_issuer = ? AND oidc_subject = ?", issuer, subject).Take(&row).Error
	if err != nil {
		return User{}, fmt.Errorf("get user by oidc identity: %w", notFound(err, "user", "oidc identity"))
	}
	return toUser(row), nil
}

// ListUsers returns up to opts.Limit accounts with ids above opts.AfterID,
// in id order, and the AfterID of the next page (0 when this is the last).
func (s *Store) ListUsers(ctx context.Context, opts UserListOptions) ([]User, int64, error) {
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultUserLimit
	case limit < 0 || limit > MaxUserLimit:
		return nil, 0, fmt.Errorf("list users: %w: limit %d is not between 1 and %d", ErrInvalidQuery, limit, MaxUserLimit)
	}
	if opts.AfterID < 0 {
		return nil, 0, fmt.Errorf("list users: %w: negative after id", ErrInvalidQuery)
	}
	var rows []userRow
	// One row more than asked tells whether a next page exists.
	err := s.db.WithContext(ctx).Where("id > ?", opts.AfterID).Order("id").Limit(int(limit) + 1).Find(&rows).Error
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", translate(err))
	}
	var next int64
	if int64(len(rows)) > limit {
		rows = rows[:limit]
		next = rows[len(rows)-1].ID
	}
	users := make([]User, len(rows))
	for i, r := range rows {
		users[i] = toUser(r)
	}
	return users, next, nil
}

// CountUsers returns the number of accounts (the first-run bootstrap asks
// whether there is any).
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&userRow{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count users: %w", translate(err))
	}
	return n, nil
}

// Revoke reasons the store writes itself.
const (
	RevokeReuse        = "reuse"
	RevokeUserDisabled = "user_disabled"
	RevokeUserChanged  = "user_changed"
)

// UpdateUser applies patch to an account in one transaction and returns it
// as stored, or a *NotFoundError, or a *ValidationError for a set field
// that breaks a rule. When the role changes, the account is disabled, or the
// password hash changes, it also bumps TokenGen and revokes every live
// session of the account (reason RevokeUserChanged) in the same
// transaction: what the account may do changed, so tokens issued before
// must stop working. Re-enabling an account does neither.
func (s *Store) UpdateUser(ctx context.Context, id int64, patch UserPatch) (User, error) {
	patch, err := patch.normalize()
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	var out User
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		cur, err := s.lockUser(tx, id)
		if err != nil {
			return err
		}
		next := cur
		if patch.DisplayName != nil {
			next.DisplayName = *patch.DisplayName
		}
		if patch.Role != nil {
			next.Role = *patch.Role
		}
		if patch.Disabled != nil {
			next.Disabled = *patch.Disabled
		}
		if patch.PasswordHash != nil {
			next.PasswordHash = *patch.PasswordHash
		}
		cut := next.Role != cur.Role || (next.Disabled && !cur.Disabled) || next.PasswordHash != cur.PasswordHash
		if cut {
			next.TokenGen++
		}
		next.UpdatedAt = s.now()
		err = tx.Model(&userRow{}).Where("id = ?", id).Updates(map[string]any{
			"display_name":  next.DisplayName,
			"role":          string(next.Role),
			"disabled":      next.Disabled,
			"password_hash": nullable(next.PasswordHash),
			"token_gen":     next.TokenGen,
			"updated_at":    next.UpdatedAt,
		}).Error
		if err != nil {
			return translate(err)
		}
		if cut {
			if err := revokeUserSessions(tx, id, next.UpdatedAt, RevokeUserChanged); err != nil {
				return err
			}
		}
		out = next
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, translate(err))
	}
	return out, nil
}

// LinkOIDC gives an account an OIDC identity and returns it as stored.
// Linking the identity it already has is a no-op. It fails with a
// *NotFoundError, a *ValidationError for a bad issuer or subject,
// &ConflictError{Entity: "user", Field: "oidc_subject"} when another
// account has the identity, and ErrOIDCLinked when this account has a
// different one: replacing an identity would let a second provider account
// take this one over, so it is a decision for an administrator, not for a
// sign-in.
func (s *Store) LinkOIDC(ctx context.Context, userID int64, issuer, subject string) (User, error) {
	var fe fieldErrors
	if err := checkOIDCPart(issuer); err != nil {
		fe.add("OIDCIssuer", err)
	}
	if err := checkOIDCPart(subject); err != nil {
		fe.add("OIDCSubject", err)
	}
	if err := fe.err("user"); err != nil {
		return User{}, fmt.Errorf("link user %d to oidc identity: %w", userID, err)
	}
	var out User
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		cur, err := s.lockUser(tx, userID)
		if err != nil {
			return err
		}
		switch {
		case cur.OIDCIssuer == issuer && cur.OIDCSubject == subject:
			out = cur
			return nil
		case cur.OIDCIssuer != "" || cur.OIDCSubject != "":
			return ErrOIDCLinked
		}
		cur.OIDCIssuer, cur.OIDCSubject, cur.UpdatedAt = issuer, subject, s.now()
		err = tx.Model(&userRow{}).Where("id = ?", userID).Updates(map[string]any{
			"oidc_issuer":  issuer,
			"oidc_subject": subject,
			"updated_at":   cur.UpdatedAt,
		}).Error
		if err != nil {
			return translate(err)
		}
		out = cur
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("link user %d to oidc identity: %w", userID, translate(err))
	}
	return out, nil
}

// lockUser reads an account for a write, locking its row on MySQL until tx
// ends (SQLite transactions here begin IMMEDIATE and exclude other writers).
func (s *Store) lockUser(tx *gorm.DB, id int64) (User, error) {
	q := tx
	if s.driver == DriverMySQL {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var row userRow
	if err := q.Where("id = ?", id).Take(&row).Error; err != nil {
		return User{}, notFound(err, "user", userKey(id))
	}
	return toUser(row), nil
}
