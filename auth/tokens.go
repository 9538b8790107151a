package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of Options.
const (
	DefaultIssuer   = "bookhub"
	DefaultAudience = "bookhub"
	DefaultLeeway   = 5 * time.Second
)

// AccessTokenType is the JOSE "typ" header of access tokens (RFC 9068). It
// keeps any other JWT signed by the same key (an ID token, say) from being
// accepted as an access token.
const AccessTokenType = "at+jwt"

// maxTokenLen bounds what Verify parses: ours are a few hundred bytes, and
// decoding megabytes of base64 from an unauthenticated client is a cheap
// denial of service.
const maxTokenLen = 8 << 10

// Tokens signs and verifies access tokens. It is safe for concurrent use.
type Tokens struct {
	signing Key
	// verifiers are the keys by kid, signing key included.
	verifiers map[string]*verifier
	// algs are the algorithms of the keys.
	algs     []string
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	b64      *base64.Encoding
	scratch  sync.Pool // of *scratch
	jwks     []byte
}

// Options tune Tokens. The zero value is fine.
type Options struct {
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Leeway tolerates clock skew between instances when checking "exp",
	// "nbf" and "iat". Zero means DefaultLeeway (5 s); negative is refused.
	Leeway time.Duration
	// Issuer is written to "iss" and required on verification. Empty means
	// DefaultIssuer.
	Issuer string
	// Audience is written to "aud" and must appear in the "aud" of every
	// verified token. Empty means DefaultAudience.
	Audience string
}

// New returns Tokens signing and verifying with one HS256 secret, which must
// be at least MinSecretLen bytes. The key id is derived from the secret, so
// every instance sharing the secret signs with the same kid.
func New(secret []byte, opts Options) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("jwt secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	k, err := HS256Key(KeyID(secret), secret)
	if err != nil {
		return nil, err
	}
	return NewWithKeys(k, nil, opts)
}

// NewWithKeys returns Tokens that sign with signing and verify tokens whose
// "kid" names signing or any of verifyOnly. Keeping the previous signing key
// in verifyOnly until its longest-lived token has expired rotates keys
// without signing anybody out. Duplicate kids are refused.
func NewWithKeys(signing Key, verifyOnly []Key, opts Options) (*Tokens, error) {
	if signing.method == nil {
		return nil, errors.New("new tokens: signing key is the zero Key")
	}
	if signing.sign == nil {
		return nil, fmt.Errorf("new tokens: key %q is verify-only and cannot sign", signing.id)
	}
	if opts.Leeway < 0 {
		return nil, fmt.Errorf("new tokens: leeway %s is negative", opts.Leeway)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	all := append([]Key{signing}, verifyOnly...)
	verifiers := make(map[string]*verifier, len(all))
	var algs []string
	for i, k := range all {
		if k.method == nil {
			return nil, fmt.Errorf("new tokens: verify-only key %d is the zero Key", i-1)
		}
		if _, dup := verifiers[k.id]; dup {
			return nil, fmt.Errorf("new tokens: duplicate key id %q", k.id)
		}
		verifiers[k.id] = newVerifier(k)
		if !slices.Contains(algs, k.Algorithm()) {
			algs = append(algs, k.Algorithm())
		}
	}
	jwks, err := marshalJWKS(all)
	if err != nil {
		return nil, fmt.Errorf("new tokens: %w", err)
	}
	t := &Tokens{
		signing:   signing,
		verifiers: verifiers,
		algs:      algs,
		issuer:    opts.Issuer,
		audience:  opts.Audience,
		leeway:    opts.Leeway,
		now:       opts.Now,
		b64:       newB64(),
		jwks:      jwks,
	}
	t.scratch.New = func() any { return new(scratch) }
	return t, nil
}

// SigningKeyID returns the kid new tokens carry.
func (t *Tokens) SigningKeyID() string { return t.signing.id }

// Claims is what an access token says about its holder.
type Claims struct {
	Subject string
	Role    Role
	// Session is the refresh-token family id ("sid"); optional.
	Session string
	// Generation is the user's token generation ("gen"); optional (0).
	Generation uint64
}

// accessClaims is the JWT payload.
type accessClaims struct {
	Role       Role   `json:"role"`
	Session    string `json:"sid,omitempty"`
	Generation uint64 `json:"gen,omitempty"`
	jwt.RegisteredClaims
}

// Issue returns a signed access token for sub with role, valid for ttl. It
// is IssueAccess without a session or generation.
func (t *Tokens) Issue(sub string, role Role, ttl time.Duration) (string, error) {
	tok, _, err := t.IssueAccess(Claims{Subject: sub, Role: role}, ttl)
	return tok, err
}

// IssueAccess returns a signed access token for c, valid for ttl, and the
// Identity that Verify will return for it (times are truncated to seconds, as
// JWT NumericDates are).
func (t *Tokens) IssueAccess(c Claims, ttl time.Duration) (string, Identity, error) {
	if c.Subject == "" {
		return "", Identity{}, errors.New("issue token: empty subject")
	}
	if !c.Role.Valid() {
		return "", Identity{}, fmt.Errorf("issue token: unknown role %q", c.Role)
	}
	if ttl <= 0 {
		return "", Identity{}, fmt.Errorf("issue token: ttl %s is not positive", ttl)
	}
	jti, err := randomID(16)
	if err != nil {
		return "", Identity{}, fmt.Errorf("issue token: %w", err)
	}
	now := t.now()
	iat := jwt.NewNumericDate(now)
	exp := jwt.NewNumericDate(now.Add(ttl))
	if !exp.After(iat.Time) {
		// A sub-second ttl would round to a token that is born expired.
		exp = jwt.NewNumericDate(iat.Add(time.Second))
	}
	pc := accessClaims{Role: c.Role, Session: c.Session, Generation: c.Generation, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    t.issuer,
		Subject:   c.Subject,
		Audience:  jwt.ClaimStrings{t.audience},
		ExpiresAt: exp,
		NotBefore: iat,
		IssuedAt:  iat,
		ID:        jti,
	}}
	tok := jwt.NewWithClaims(t.signing.method, pc)
	tok.Header["kid"] = t.signing.id
	tok.Header["typ"] = AccessTokenType
	s, err := tok.SignedString(t.signing.sign)
	if err != nil {
		return "", Identity{}, fmt.Errorf("issue token for %q: %w", c.Subject, err)
	}
	return s, identityOf(&pc), nil
}

func identityOf(c *accessClaims) Identity {
	id := Identity{
		Subject:    c.Subject,
		Role:       c.Role,
		TokenID:    c.ID,
		Session:    c.Session,
		Generation: c.Generation,
	}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time
	}
	if c.IssuedAt != nil {
		id.IssuedAt = c.IssuedAt.Time
	}
	return id
}

// randomID returns n random bytes, base64url without padding.
func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
