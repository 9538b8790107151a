package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	signing  Key
	keys     map[string]Key
	issuer   string
	audience string
	now      func() time.Time
	parser   *jwt.Parser
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
	keys := make(map[string]Key, len(all))
	var algs []string
	for i, k := range all {
		if k.method == nil {
			return nil, fmt.Errorf("new tokens: verify-only key %d is the zero Key", i-1)
		}
		if _, dup := keys[k.id]; dup {
			return nil, fmt.Errorf("new tokens: duplicate key id %q", k.id)
		}
		keys[k.id] = k
		if !slices.Contains(algs, k.Algorithm()) {
			algs = append(algs, k.Algorithm())
		}
	}
	jwks, err := marshalJWKS(all)
	if err != nil {
		return nil, fmt.Errorf("new tokens: %w", err)
	}
	return &Tokens{
		signing:  signing,
		keys:     keys,
		issuer:   opts.Issuer,
		audience: opts.Audience,
		now:      opts.Now,
		jwks:     jwks,
		parser: jwt.NewParser(
			// Only the algorithms of our keys; keyFor pins the exact one.
			jwt.WithValidMethods(algs),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(opts.Now),
		),
	}, nil
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

// Verify checks an access token's header ("typ", "kid", "alg"), signature,
// issuer, audience, times and claims. Every failure wraps ErrInvalidToken
// (or is ErrMissingToken for "").
func (t *Tokens) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrMissingToken
	}
	// A JWT starts with "eyJ"; anything with our refresh prefix, well-formed
	// or not, is a refresh token sent to the wrong place.
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		return Identity{}, fmt.Errorf("%w: a refresh token is not an access token", ErrInvalidToken)
	}
	if len(token) > maxTokenLen {
		return Identity{}, fmt.Errorf("%w: token is %d bytes, want at most %d", ErrInvalidToken, len(token), maxTokenLen)
	}
	var c accessClaims
	if _, err := t.parser.ParseWithClaims(token, &c, t.keyFor); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case c.Subject == "":
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	case !c.Role.Valid():
		return Identity{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, c.Role)
	case c.IssuedAt == nil:
		return Identity{}, fmt.Errorf("%w: no iat claim", ErrInvalidToken)
	case c.ID == "":
		return Identity{}, fmt.Errorf("%w: no jti claim", ErrInvalidToken)
	}
	return identityOf(&c), nil
}

// keyFor is the jwt.Keyfunc: it checks "typ", picks the key by "kid" (the
// signing key when there is none) and pins "alg" to that key's algorithm.
func (t *Tokens) keyFor(tok *jwt.Token) (any, error) {
	typ, _ := tok.Header["typ"].(string)
	if !isAccessTokenType(typ) {
		return nil, fmt.Errorf("typ %q is not %q", typ, AccessTokenType)
	}
	k := t.signing
	if raw, ok := tok.Header["kid"]; ok {
		kid, isString := raw.(string)
		if !isString {
			return nil, fmt.Errorf("kid is a %T, not a string", raw)
		}
		if k, ok = t.keys[kid]; !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
	}
	if alg := tok.Method.Alg(); alg != k.Algorithm() {
		return nil, fmt.Errorf("alg %q does not match key %q (%s)", alg, k.id, k.Algorithm())
	}
	return k.verify, nil
}

// isAccessTokenType accepts "at+jwt" and its full media type
// "application/at+jwt", case-insensitively (RFC 7515 section 4.1.9).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == AccessTokenType || typ == "application/"+AccessTokenType
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
