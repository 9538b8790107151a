// Package auth issues and verifies bookhub's access tokens: HS256 JWTs with
// "sub", "role" and "exp" claims. The algorithm is pinned, so a token signed
// with anything else (including "none") is refused.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a token's holder may do.
type Role string

// The roles, from least to most privileged.
const (
	RoleViewer Role = "viewer"
	RoleEditor Role = "editor"
	RoleAdmin  Role = "admin"
)

var rank = map[Role]int{RoleViewer: 1, RoleEditor: 2, RoleAdmin: 3}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return rank[r] > 0 }

// AtLeast reports whether r is as privileged as min.
func (r Role) AtLeast(min Role) bool { return r.Valid() && rank[r] >= rank[min] }

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("unknown role %q (want viewer, editor or admin)", s)
	}
	return r, nil
}

// Identity is who a verified token speaks for.
type Identity struct {
	Subject   string
	Role      Role
	ExpiresAt time.Time
}

// Errors returned by Verify. Both wrap the underlying reason.
var (
	ErrMissingToken = errors.New("missing token")
	ErrInvalidToken = errors.New("invalid token")
)

// MinSecretLen is the shortest secret accepted for HS256 (256 bits).
const MinSecretLen = 32

// Tokens signs and verifies tokens with one shared secret. It is safe for
// concurrent use.
type Tokens struct {
	secret []byte
	now    func() time.Time
	parser *jwt.Parser
}

// Options tune Tokens. The zero value is fine.
type Options struct {
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Leeway tolerates clock skew between instances when checking "exp".
	// Zero means 5 seconds.
	Leeway time.Duration
}

// New returns Tokens using secret, which must be at least MinSecretLen bytes.
func New(secret []byte, opts Options) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("jwt secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Leeway == 0 {
		opts.Leeway = 5 * time.Second
	}
	return &Tokens{
		secret: append([]byte(nil), secret...),
		now:    opts.Now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(opts.Now),
		),
	}, nil
}

type claims struct {
	Role Role `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for sub with role, valid for ttl.
func (t *Tokens) Issue(sub string, role Role, ttl time.Duration) (string, error) {
	if sub == "" {
		return "", errors.New("issue token: empty subject")
	}
	if !role.Valid() {
		return "", fmt.Errorf("issue token: unknown role %q", role)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl %s is not positive", ttl)
	}
	now := t.now()
	c := claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return s, nil
}

// Verify checks a token's signature, algorithm, expiry and claims.
// Every failure wraps ErrInvalidToken (or ErrMissingToken for "").
func (t *Tokens) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrMissingToken
	}
	var c claims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	if !c.Role.Valid() {
		return Identity{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, c.Role)
	}
	return Identity{Subject: c.Subject, Role: c.Role, ExpiresAt: c.ExpiresAt.Time}, nil
}

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
