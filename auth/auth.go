// Package auth is bookhub's token, key and password material. It holds no
// HTTP routes, no Redis and no database: the accounts and sessions packages
// build on it.
//
// # Access tokens
//
// An access token is a short-lived JWT (RFC 9068 profile, header "typ":
// "at+jwt") carrying "sub", "role", "iss", "aud", "exp", "iat", "nbf", a
// random 128-bit "jti", and optionally "sid" (the session, i.e. the refresh
// token family it was minted from) and "gen" (the user's token generation;
// bumping a user's generation revokes every access token minted before).
// Verification is stateless: the signature, the audience, the issuer and the
// times are checked here; comparing "gen" or "sid" against current state is
// the caller's job.
//
// # Keys and rotation
//
// Every token names its key in the header's "kid". [Tokens] signs with one
// key and verifies with that key plus any number of verify-only keys, so a
// new signing key can be rolled out while tokens signed by the old one keep
// verifying until they expire. The key is chosen by "kid" alone and the
// token's "alg" must be exactly that key's algorithm, which rules out
// algorithm confusion (HS256 signed with an Ed25519 public key, RS256, or
// "none"). HS256 keys are shared secrets and never leave the process; EdDSA
// (Ed25519) public keys are published as a JWKS by [Tokens.JWKSHandler].
//
// # Refresh tokens
//
// Refresh tokens are opaque random strings ("bhr_" + 256 random bits), never
// JWTs, so one can never pass for an access token; only their SHA-256 is
// stored ([HashRefreshToken]).
//
// # Passwords
//
// [Passwords] hashes with argon2id in PHC string format, bounds the number of
// concurrent hashes, and offers [Passwords.VerifyDummy] so a login for an
// unknown email costs the same as one for a known email. [CheckPassword] is
// the password policy.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Role is what a token's holder may do.
type Role string

// The roles, from least to most privileged.
const (
	RoleViewer Role = "viewer"
	RoleEditor Role = "editor"
	RoleAdmin  Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r is as privileged as min.
func (r Role) AtLeast(min Role) bool { return r.Valid() && r.rank() >= min.rank() }

// rank orders the roles; a switch rather than a package-level map keeps the
// package free of mutable globals.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleEditor:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (want viewer, editor or admin)", s)
	}
	return r, nil
}

// Identity is who a verified access token speaks for.
type Identity struct {
	Subject   string
	Role      Role
	ExpiresAt time.Time
	// IssuedAt is the token's "iat", to the second.
	IssuedAt time.Time
	// TokenID is the token's "jti": unique per token, for deny lists and logs.
	TokenID string
	// Session is the "sid" claim, the refresh-token family the token was
	// minted from; empty for tokens not tied to a session (CLI, tests).
	Session string
	// Generation is the "gen" claim; the caller refuses the token when the
	// user's current generation is higher.
	Generation uint64
}

// Errors returned by Verify. Both wrap the underlying reason.
var (
	ErrMissingToken = errors.New("missing token")
	ErrInvalidToken = errors.New("invalid token")
)

// FromRequest returns the token of r: from "Authorization: Bearer <token>"
// or, for clients that cannot set headers (browsers' WebSocket, wscat), from
// the "token" query parameter. The header wins when both are present.
func FromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get("token")
}

// FromHeader returns the bearer token of r's Authorization header only.
// REST uses it: a token in a URL ends up in proxy logs and browser history.
func FromHeader(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
