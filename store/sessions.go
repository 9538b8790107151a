package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Sessions are refresh-token families.
//
// A sign-in creates a session (the family) with its first refresh token.
// Each refresh presents the current token and gets a successor; the
// presented one is then used. The store keeps only hashes (the caller
// hashes the random token, e.g. with SHA-256), so a copy of the database
// yields no usable token.
//
// Presenting a used token means either that the legitimate client lost the
// response to its refresh and retries, or that someone else holds a copy of
// the token. The store tells them apart by one rule (see RotateRefresh): a
// retry within the grace period, while the successor has never been used,
// is legitimate; anything else is reuse, and reuse ends the whole family,
// because the store cannot know which of the two holders is the thief.

// HashLen is the length of a refresh token hash: a SHA-256 digest.
const HashLen = 32

// Errors of refresh-token sessions. Match with errors.Is.
var (
	// ErrRefreshInvalid: no refresh token has that hash.
	ErrRefreshInvalid = errors.New("refresh token invalid")
	// ErrRefreshRevoked: the token's session was revoked (logout, reuse,
	// an account change).
	ErrRefreshRevoked = errors.New("refresh token revoked")
	// ErrRefreshExpired: the token's session reached its absolute end.
	ErrRefreshExpired = errors.New("refresh token expired")
	// ErrRefreshReused: a token was presented again outside the grace
	// rule; the session is now revoked. The error is a *ReuseError.
	ErrRefreshReused = errors.New("refresh token reused")
	// ErrUserDisabled: the account is disabled; its session is now revoked.
	ErrUserDisabled = errors.New("user disabled")
)

// ReuseError names the session RotateRefresh revoked on detecting reuse, so
// the caller can log a security event and cut the access tokens issued in
// it. It matches ErrRefreshReused.
type ReuseError struct {
	SessionID string
	UserID    int64
}

func (e *ReuseError) Error() string {
	return fmt.Sprintf("%s: session %s of user %d revoked", ErrRefreshReused, e.SessionID, e.UserID)
}

// Is makes errors.Is(err, ErrRefreshReused) true.
func (e *ReuseError) Is(target error) bool { return target == ErrRefreshReused }

// NewSession is what CreateSession needs.
type NewSession struct {
	// ID is the family id, chosen by the caller (random, at most
	// MaxSessionIDLen bytes); access tokens name it.
	ID     string
	UserID int64
	// TokenHash is the HashLen-byte hash of the first refresh token.
	TokenHash []byte
	// ExpiresAt is the absolute end of the family: no refresh after it.
	ExpiresAt time.Time
}

// MaxSessionIDLen is the most bytes a session id may have.
const MaxSessionIDLen = 64

// maxReasonLen is the size of sessions.revoke_reason.
const maxReasonLen = 32

// RotateRequest is what RotateRefresh needs.
type RotateRequest struct {
	// OldHash is the hash of the token presented, NewHash the hash of its
	// successor; both HashLen bytes.
	OldHash, NewHash []byte
	// Now is the time of the refresh; zero means the store's clock.
	Now time.Time
	// Grace is how long after a token's first use a retry with it is still
	// honoured (see RotateRefresh); 0 disables retries.
	Grace time.Duration
}

// RotateResult is a successful rotation.
type RotateResult struct {
	// User is the account as it is now (current role and TokenGen): the
	// new access token must be minted from it, not from the old token.
	User      User
	SessionID string
	// ExpiresAt is the end of the session: rotating never extends it.
	ExpiresAt time.Time
}

type sessionRow struct {
	ID           string     `gorm:"column:id;primaryKey"`
	UserID       int64      `gorm:"column:user_id"`
	CreatedAt    time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	ExpiresAt    time.Time  `gorm:"column:expires_at"`
	RevokedAt    *time.Time `gorm:"column:revoked_at"`
	RevokeReason string     `gorm:"column:revoke_reason"`
}

func (sessionRow) TableName() string { return "sessions" }

// refreshRow is one token of a family. A token is live while UsedAt is nil
// and Superseded is false; ReplacedBy is the successor issued when it was
// (last) used; Superseded marks a successor replaced by a grace retry, which
// must never be honoured.
type refreshRow struct {
	Hash       []byte     `gorm:"column:hash;primaryKey"`
	SessionID  string     `gorm:"column:session_id"`
	CreatedAt  time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UsedAt     *time.Time `gorm:"column:used_at"`
	ReplacedBy []byte     `gorm:"column:replaced_by"`
	Superseded bool       `gorm:"column:superseded"`
}

func (refreshRow) TableName() string { return "refresh_tokens" }

// CreateSession starts a family with its first refresh token. It fails with
// a *NotFoundError when the user does not exist, ErrUserDisabled when it is
// disabled, &ConflictError{Entity: "session", Field: "id"} when the id is
// taken, and a plain error for a malformed request.
func (s *Store) CreateSession(ctx context.Context, ns NewSession) error {
	switch {
	case ns.ID == "" || len(ns.ID) > MaxSessionIDLen:
		return fmt.Errorf("create session: id must be 1 to %d bytes", MaxSessionIDLen)
	case len(ns.TokenHash) != HashLen:
		return fmt.Errorf("create session: token hash must be %d bytes, got %d", HashLen, len(ns.TokenHash))
	}
	now := s.now()
	expires := ns.ExpiresAt.UTC().Truncate(time.Microsecond)
	if !expires.After(now) {
		return errors.New("create session: expiry is not in the future")
	}
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		// Locked on MySQL: an UpdateUser disabling the account either
		// commits first (and is seen here) or waits for this session,
		// which it then revokes. (An exclusive lock: MariaDB lacks FOR
		// SHARE, and sign-ins of one account do not contend.)
		q := tx
		if s.driver == DriverMySQL {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
		}
		var u userRow
		if err := q.Select("id", "disabled").Where("id = ?", ns.UserID).Take(&u).Error; err != nil {
			return notFound(err, "user", userKey(ns.UserID))
		}
		if u.Disabled {
			return ErrUserDisabled
		}
		sess := sessionRow{ID: ns.ID, UserID: ns.UserID, CreatedAt: now, ExpiresAt: expires}
		if err := tx.Create(&sess).Error; err != nil {
			if err = translate(err); errors.Is(err, ErrConflict) {
				return &ConflictError{Entity: "session", Field: "id"}
			}
			return err
		}
		tok := refreshRow{Hash: ns.TokenHash, SessionID: ns.ID, CreatedAt: now}
		if err := tx.Create(&tok).Error; err != nil {
			if err = translate(err); errors.Is(err, ErrConflict) {
				return &ConflictError{Entity: "session", Field: "refresh_token"}
			}
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create session for user %d: %w", ns.UserID, translate(err))
	}
	return nil
}

// RotateRefresh exchanges the token hashed as req.OldHash for its
// successor req.NewHash, in one transaction that locks the token and its
// session (SELECT ... FOR UPDATE on MySQL; SQLite transactions here begin
// IMMEDIATE and exclude other writers), so concurrent refreshes with one
// token are decided one after the other. The checks, in order:
//
//   - no token has OldHash: ErrRefreshInvalid;
//   - its session is revoked: ErrRefreshRevoked;
//   - its session has expired (Now at or after ExpiresAt): ErrRefreshExpired;
//   - reuse: the token was superseded by a grace retry; or it was used more
//     than Grace ago; or it was used and its successor has been used too
//     (so the client did receive the successor): the session is revoked
//     (reason RevokeReuse) and the error is a *ReuseError
//     (ErrRefreshReused);
//   - the account is disabled: the session is revoked (reason
//     RevokeUserDisabled) and the error is ErrUserDisabled.
//
// Otherwise the token is rotated. A token never used is marked used and
// NewHash becomes its successor. A token used at most Grace ago whose
// successor is still unused is a retry by a client that lost the response:
// that successor is superseded (it was never received, or a concurrent
// twin's response lost the race: the newest one wins) and NewHash becomes
// the successor instead. The grace period counts from the first use, so
// retries cannot extend it. Either way the session keeps exactly one live
// token. The result carries the account as it is now.
//
// Revocations commit even though an error is returned.
func (s *Store) RotateRefresh(ctx context.Context, req RotateRequest) (RotateResult, error) {
	if len(req.OldHash) != HashLen {
		return RotateResult{}, fmt.Errorf("rotate refresh token: %w", ErrRefreshInvalid)
	}
	if len(req.NewHash) != HashLen {
		return RotateResult{}, fmt.Errorf("rotate refresh token: new hash must be %d bytes, got %d", HashLen, len(req.NewHash))
	}
	now := req.Now.UTC().Truncate(time.Microsecond)
	if req.Now.IsZero() {
		now = s.now()
	}
	var (
		res     RotateResult
		outcome error // a refusal that must still commit its revocation
	)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		tok, sess, err := s.lockRefresh(tx, req.OldHash)
		if err != nil {
			return err
		}
		switch {
		case sess.RevokedAt != nil:
			return ErrRefreshRevoked
		case !now.Before(sess.ExpiresAt):
			return ErrRefreshExpired
		}
		var u userRow
		if err := tx.Where("id = ?", sess.UserID).Take(&u).Error; err != nil {
			return fmt.Errorf("load user %d: %w", sess.UserID, notFound(err, "user", userKey(sess.UserID)))
		}
		reuse, err := s.isReuse(tx, tok, now, req.Grace)
		if err != nil {
			return err
		}
		if reuse {
			outcome = &ReuseError{SessionID: sess.ID, UserID: sess.UserID}
			return revokeSession(tx, sess.ID, now, RevokeReuse)
		}
		if u.Disabled {
			outcome = ErrUserDisabled
			return revokeSession(tx, sess.ID, now, RevokeUserDisabled)
		}
		used := map[string]any{"replaced_by": req.NewHash}
		if tok.UsedAt == nil {
			used["used_at"] = now
		}
		if err := tx.Model(&refreshRow{}).Where("hash = ?", tok.Hash).Updates(used).Error; err != nil {
			return fmt.Errorf("mark token used: %w", translate(err))
		}
		next := refreshRow{Hash: req.NewHash, SessionID: sess.ID, CreatedAt: now}
		if err := tx.Create(&next).Error; err != nil {
			return fmt.Errorf("insert successor: %w", translate(err))
		}
		res = RotateResult{User: toUser(u), SessionID: sess.ID, ExpiresAt: sess.ExpiresAt}
		return nil
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return RotateResult{}, fmt.Errorf("rotate refresh token: %w", translate(err))
	}
	return res, nil
}

// lockRefresh reads a token and its session for a rotation, locking both
// rows on MySQL, token first (every writer of a token's rows takes them in
// this order).
func (s *Store) lockRefresh(tx *gorm.DB, hash []byte) (refreshRow, sessionRow, error) {
	lock := func() *gorm.DB {
		if s.driver == DriverMySQL {
			return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
		}
		return tx
	}
	var tok refreshRow
	if err := lock().Where("hash = ?", hash).Take(&tok).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return refreshRow{}, sessionRow{}, ErrRefreshInvalid
		}
		return refreshRow{}, sessionRow{}, translate(err)
	}
	var sess sessionRow
	if err := lock().Where("id = ?", tok.SessionID).Take(&sess).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return refreshRow{}, sessionRow{}, ErrRefreshInvalid
		}
		return refreshRow{}, sessionRow{}, translate(err)
	}
	return tok, sess, nil
}

// isReuse applies the reuse rule of RotateRefresh to tok. For a legitimate
// grace retry it supersedes the successor issued earlier, in tx.
func (s *Store) isReuse(tx *gorm.DB, tok refreshRow, now time.Time, grace time.Duration) (bool, error) {
	switch {
	case tok.Superseded:
		return true, nil
	case tok.UsedAt == nil:
		return false, nil
	case grace <= 0 || now.Sub(*tok.UsedAt) > grace:
		// A negative age (another instance's clock behind) counts as
		// within the grace period.
		return true, nil
	}
	q := tx
	if s.driver == DriverMySQL {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var succ refreshRow
	err := q.Where("hash = ?", tok.ReplacedBy).Take(&succ).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("load successor: %w", translate(err))
	case succ.UsedAt != nil || succ.Superseded:
		return true, nil
	}
	err = tx.Model(&refreshRow{}).Where("hash = ?", succ.Hash).Update("superseded", true).Error
	if err != nil {
		return false, fmt.Errorf("supersede successor: %w", translate(err))
	}
	return false, nil
}

// RevokeSessionByRefresh revokes the session of the token hashed as hash
// (logout) and names it. Any token of the family will do, used or not:
// ending a session is never a risk. Revoking a revoked session keeps its
// first reason. An unknown hash is ErrRefreshInvalid.
func (s *Store) RevokeSessionByRefresh(ctx context.Context, hash []byte, reason string) (sessionID string, userID int64, err error) {
	reason = revokeReason(reason)
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		tok, sess, err := s.lockRefresh(tx, hash)
		if err != nil {
			return err
		}
		sessionID, userID = tok.SessionID, sess.UserID
		return revokeSession(tx, sess.ID, s.now(), reason)
	})
	if err != nil {
		return "", 0, fmt.Errorf("revoke session by refresh token: %w", translate(err))
	}
	return sessionID, userID, nil
}

// RevokeSession revokes a session by id, or fails with a *NotFoundError.
// Revoking a revoked session keeps its first reason. reason is at most 32
// bytes (longer is cut); "" means "revoked".
func (s *Store) RevokeSession(ctx context.Context, id string, reason string) error {
	reason = revokeReason(reason)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&sessionRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
			return translate(err)
		}
		if n == 0 {
			return &NotFoundError{Entity: "session", Key: "id"}
		}
		return revokeSession(tx, id, s.now(), reason)
	})
	if err != nil {
		return fmt.Errorf("revoke session: %w", translate(err))
	}
	return nil
}

// PruneSessions deletes the sessions that expired before before, with
// their tokens, and returns how many sessions it deleted. Revoked sessions
// stay until they expire, so their tokens are refused as revoked, not as
// unknown.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	before = before.UTC()
	var n int64
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		expired := tx.Session(&gorm.Session{NewDB: true}).Model(&sessionRow{}).Select("id").Where("expires_at < ?", before)
		if err := tx.Where("session_id IN (?)", expired).Delete(&refreshRow{}).Error; err != nil {
			return fmt.Errorf("delete tokens: %w", translate(err))
		}
		res := tx.Where("expires_at < ?", before).Delete(&sessionRow{})
		if res.Error != nil {
			return fmt.Errorf("delete sessions: %w", translate(res.Error))
		}
		n = res.RowsAffected
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return n, nil
}

func revokeReason(reason string) string {
	if reason == "" {
		return "revoked"
	}
	if len(reason) > maxReasonLen {
		return reason[:maxReasonLen]
	}
	return reason
}

// revokeSession marks a session revoked unless it already is.
func revokeSession(tx *gorm.DB, id string, now time.Time, reason string) error {
	err := tx.Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", id).
		Updates(map[string]any{"revoked_at": now, "revoke_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("revoke session: %w", translate(err))
	}
	return nil
}

// revokeUserSessions revokes every session of a user not yet revoked.
func revokeUserSessions(tx *gorm.DB, userID int64, now time.Time, reason string) error {
	err := tx.Model(&sessionRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Updates(map[string]any{"revoked_at": now, "revoke_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("revoke sessions of user %d: %w", userID, translate(err))
	}
	return nil
}
