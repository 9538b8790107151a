package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verification is on the path of every request and WebSocket handshake, so
// it does not go through jwt.Parser, which decodes the header into a map and
// the claims through reflection, and keys a new HMAC for every token (67
// allocations for an HS256 token). Verify makes the same checks with one
// allocation on success: the header first, then the signature, and only
// then the claims. Its refusals wrap the errors jwt.Parser's would
// (jwt.ErrTokenMalformed, jwt.ErrTokenSignatureInvalid,
// jwt.ErrTokenUnverifiable, jwt.ErrTokenExpired, ...), so callers and tests
// that tell them apart keep working. Where it costs nothing it is stricter
// than jwt.Parser, and never more lenient (FuzzVerify holds the two against
// each other): base64 must be canonical (no ignored line breaks, no set
// padding bits, so a token has one spelling); the header and claim members
// it reads must not repeat; claim names are case-sensitive; times are JSON
// numbers, never strings.

// verifier is one key as Verify uses it.
type verifier struct {
	Key
	// macs holds keyed HMAC-SHA256 states of an HS256 key: Reset returns a
	// used one to its keyed state, which saves hmac.New's allocations and
	// key schedule on every token. Nil for EdDSA.
	macs *sync.Pool
}

func newVerifier(k Key) *verifier {
	v := &verifier{Key: k}
	if secret, ok := k.verify.([]byte); ok {
		v.macs = &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}
	}
	return v
}

// signatureValid reports whether sig signs input under v.
func (v *verifier) signatureValid(input, sig []byte, sum *[sha256.Size]byte) bool {
	if v.macs != nil {
		mac := v.macs.Get().(hash.Hash)
		mac.Reset()
		mac.Write(input)
		ok := hmac.Equal(mac.Sum(sum[:0]), sig)
		v.macs.Put(mac)
		return ok
	}
	pub, ok := v.verify.(ed25519.PublicKey)
	return ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, input, sig)
}

// scratch is the memory one Verify works in, pooled per Tokens.
type scratch struct {
	// buf holds the token's bytes (what the signature covers) and then its
	// decoded header, claims and signature.
	buf []byte
	// ids backs the identity's strings, which are built as one.
	ids []byte
	sum [sha256.Size]byte
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
	s := t.scratch.Get().(*scratch)
	defer t.scratch.Put(s)
	id, err := t.verify(token, s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return id, nil
}

func (t *Tokens) verify(token string, s *scratch) (Identity, error) {
	dot1, dot2, ok := splitCompact(token)
	if !ok {
		return Identity{}, fmt.Errorf("%w: not three base64url segments", jwt.ErrTokenMalformed)
	}
	n := len(token)
	need := n + t.b64.DecodedLen(dot1) + t.b64.DecodedLen(dot2-dot1-1) + t.b64.DecodedLen(n-dot2-1)
	if cap(s.buf) < need {
		s.buf = make([]byte, need)
	}
	raw := s.buf[:n]
	copy(raw, token)
	out := s.buf[n:need]
	header, out, err := t.decodeSegment(raw[:dot1], out)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: header: %w", jwt.ErrTokenMalformed, err)
	}
	v, err := t.verifierFor(header)
	if err != nil {
		return Identity{}, err
	}
	payload, out, err := t.decodeSegment(raw[dot1+1:dot2], out)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %w", jwt.ErrTokenMalformed, err)
	}
	sig, _, err := t.decodeSegment(raw[dot2+1:], out)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: signature: %w", jwt.ErrTokenMalformed, err)
	}
	// The claims are read only once the signature holds: nobody without a
	// key gets to feed the claims decoder.
	if !v.signatureValid(raw[:dot2], sig, &s.sum) {
		return Identity{}, fmt.Errorf("%w: the signature does not verify with key %q", jwt.ErrTokenSignatureInvalid, v.id)
	}
	c := tokenClaims{wantAudience: t.audience}
	if err := eachMember(payload, c.member); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %w", jwt.ErrTokenMalformed, err)
	}
	if err := t.checkClaims(&c); err != nil {
		return Identity{}, err
	}
	// One string backs sub, jti and sid: one allocation instead of three.
	s.ids = append(append(append(s.ids[:0], c.sub...), c.jti...), c.sid...)
	all := string(s.ids)
	sub, jti := len(c.sub), len(c.sub)+len(c.jti)
	return Identity{
		Subject:    all[:sub],
		Role:       c.role,
		ExpiresAt:  c.exp,
		IssuedAt:   c.iat,
		TokenID:    all[sub:jti],
		Session:    all[jti:],
		Generation: c.gen,
	}, nil
}

// splitCompact finds the two dots of a compact JWS and checks that every
// other byte is of the base64url alphabet.
func splitCompact(token string) (dot1, dot2 int, ok bool) {
	dot1, dot2 = -1, -1
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.' && dot1 < 0:
			dot1 = i
		case c == '.' && dot2 < 0:
			dot2 = i
		default:
			return 0, 0, false
		}
	}
	return dot1, dot2, dot2 > 0
}

// decodeSegment decodes seg into the front of out and returns the decoded
// bytes and the rest of out.
func (t *Tokens) decodeSegment(seg, out []byte) (dec, rest []byte, err error) {
	n, err := t.b64.Decode(out, seg)
	if err != nil {
		return nil, nil, err
	}
	return out[:n], out[n:], nil
}

// verifierFor reads the header and returns the key that must have signed
// the token. The checks, and the jwt error each failure wraps, are those of
// jwt.Parser with bookhub's key function: "alg" one of our keys'
// algorithms (ErrTokenSignatureInvalid), then "typ" an access token, "kid"
// one of our keys (the signing key when absent) and "alg" exactly that
// key's algorithm (ErrTokenUnverifiable). Pinning alg to the key chosen by
// kid is what rules out algorithm confusion.
func (t *Tokens) verifierFor(header []byte) (*verifier, error) {
	var h tokenHeader
	if err := eachMember(header, h.member); err != nil {
		return nil, fmt.Errorf("%w: header: %w", jwt.ErrTokenMalformed, err)
	}
	if !h.algString {
		return nil, fmt.Errorf("%w: alg is missing or not a string", jwt.ErrTokenUnverifiable)
	}
	known := false
	for _, a := range t.algs {
		known = known || string(h.alg) == a
	}
	if !known {
		return nil, fmt.Errorf("%w: signing method %q is invalid", jwt.ErrTokenSignatureInvalid, h.alg)
	}
	if !isAccessTokenType(h.typ) {
		return nil, fmt.Errorf("%w: typ %q is not %q", jwt.ErrTokenUnverifiable, h.typ, AccessTokenType)
	}
	v := t.verifiers[t.signing.id]
	if h.seen&headerKid != 0 {
		if !h.kidString {
			return nil, fmt.Errorf("%w: kid is not a string", jwt.ErrTokenUnverifiable)
		}
		if v = t.verifiers[string(h.kid)]; v == nil {
			return nil, fmt.Errorf("%w: unknown kid %q", jwt.ErrTokenUnverifiable, h.kid)
		}
	}
	if string(h.alg) != v.Algorithm() {
		return nil, fmt.Errorf("%w: alg %q does not match key %q (%s)", jwt.ErrTokenUnverifiable, h.alg, v.id, v.Algorithm())
	}
	return v, nil
}

// isAccessTokenType accepts "at+jwt" and its full media type
// "application/at+jwt", ASCII case-insensitively (RFC 7515 section 4.1.9).
func isAccessTokenType(typ []byte) bool {
	return asciiEqualFold(typ, AccessTokenType) || asciiEqualFold(typ, "application/"+AccessTokenType)
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Header members Verify reads, as bits of tokenHeader.seen.
const (
	headerAlg = 1 << iota
	headerTyp
	headerKid
)

// tokenHeader is what Verify reads of a JOSE header. Values alias the
// scratch buffer.
type tokenHeader struct {
	seen                 int
	alg, typ, kid        []byte
	algString, kidString bool
}

var errDuplicate = errors.New("a name appears twice")

// member takes one header member. A value of the wrong type is remembered,
// not refused here, so that the refusal names the check that failed (a
// numeric alg is "unspecified", a numeric kid "not a string").
func (h *tokenHeader) member(name, value []byte) error {
	var bit int
	var dst *[]byte
	var isString *bool
	var typIsString bool // a typ that is not a string is no access token's: left empty
	switch string(name) {
	case "alg":
		bit, dst, isString = headerAlg, &h.alg, &h.algString
	case "typ":
		bit, dst, isString = headerTyp, &h.typ, &typIsString
	case "kid":
		bit, dst, isString = headerKid, &h.kid, &h.kidString
	default:
		return nil
	}
	if h.seen&bit != 0 {
		return fmt.Errorf("%w: %q", errDuplicate, name)
	}
	h.seen |= bit
	if len(value) == 0 || value[0] != '"' {
		return nil
	}
	s, err := stringValue(value)
	if err != nil {
		return err
	}
	*dst, *isString = s, true
	return nil
}

// Claims Verify reads, as bits of tokenClaims.seen.
const (
	claimSub = 1 << iota
	claimRole
	claimIss
	claimAud
	claimExp
	claimNbf
	claimIat
	claimJti
	claimSid
	claimGen
)

// claimNames are the names Verify reads, with their bits.
var claimNames = [...]struct {
	name string
	bit  int
}{
	{"sub", claimSub}, {"role", claimRole}, {"iss", claimIss}, {"aud", claimAud}, {"exp", claimExp},
	{"nbf", claimNbf}, {"iat", claimIat}, {"jti", claimJti}, {"sid", claimSid}, {"gen", claimGen},
}

// tokenClaims is what Verify reads of the claims. Strings alias the scratch
// buffer.
type tokenClaims struct {
	// wantAudience is the "aud" entry Verify wants; set before the walk.
	wantAudience string
	// seen has a bit per claim present, set has one per claim present and
	// not null.
	seen, set     int
	sub, jti, sid []byte
	role          Role
	roleRaw       []byte
	iss           []byte
	exp, nbf, iat time.Time
	gen           uint64
	// What jwt.ClaimStrings would hold of "aud": how many entries, whether
	// the only one is "", whether any is ours.
	audCount     int
	audOnlyEmpty bool
	audOurs      bool
}

// member takes one claim. Types are those an encoding/json decode into
// jwt.RegisteredClaims would accept, save that times must be numbers; an
// unknown claim is ignored, but one that differs from a known name only in
// case is refused (encoding/json would have matched it case-insensitively).
func (c *tokenClaims) member(name, value []byte) error {
	bit := 0
	for _, n := range claimNames {
		if string(name) == n.name {
			bit = n.bit
			break
		}
	}
	if bit == 0 {
		for _, n := range claimNames {
			if strings.EqualFold(string(name), n.name) {
				return fmt.Errorf("claim %q: claim names are case-sensitive, want %q", name, n.name)
			}
		}
		return nil
	}
	if c.seen&bit != 0 {
		return fmt.Errorf("%w: %q", errDuplicate, name)
	}
	c.seen |= bit
	if isNull(value) {
		return nil // as encoding/json: a null leaves the claim unset
	}
	c.set |= bit
	var err error
	switch bit {
	case claimSub:
		c.sub, err = stringValue(value)
	case claimJti:
		c.jti, err = stringValue(value)
	case claimSid:
		c.sid, err = stringValue(value)
	case claimIss:
		c.iss, err = stringValue(value)
	case claimRole:
		c.roleRaw, err = stringValue(value)
		c.role = roleOf(c.roleRaw)
	case claimAud:
		err = c.takeAudience(value)
	case claimExp:
		c.exp, err = numericDate(value)
	case claimNbf:
		c.nbf, err = numericDate(value)
	case claimIat:
		c.iat, err = numericDate(value)
	case claimGen:
		if c.gen, err = strconv.ParseUint(string(value), 10, 64); err != nil {
			err = errors.New("not an unsigned 64-bit integer")
		}
	}
	if err != nil {
		return fmt.Errorf("claim %q: %w", name, err)
	}
	return nil
}

// takeAudience takes "aud": one string or an array of strings (RFC 7519
// section 4.1.3), as jwt.ClaimStrings decodes it, without keeping the list.
func (c *tokenClaims) takeAudience(value []byte) error {
	entry := func(e []byte) error {
		s, err := stringValue(e)
		if err != nil {
			return err
		}
		c.audCount++
		c.audOnlyEmpty = c.audCount == 1 && len(s) == 0
		c.audOurs = c.audOurs || string(s) == c.wantAudience
		return nil
	}
	switch value[0] {
	case '"':
		return entry(value)
	case '[':
		return eachElement(value, entry)
	}
	return errors.New("not a string or an array of strings")
}

// roleOf returns the Role constant named by b, or "" for no role: the
// constant, so that a verified token's role costs no allocation.
func roleOf(b []byte) Role {
	switch string(b) {
	case string(RoleViewer):
		return RoleViewer
	case string(RoleEditor):
		return RoleEditor
	case string(RoleAdmin):
		return RoleAdmin
	}
	return ""
}

// numericDate reads a JWT NumericDate as jwt.NumericDate does: seconds,
// possibly fractional, truncated to the second.
func numericDate(value []byte) (time.Time, error) {
	if c := value[0]; c != '-' && (c < '0' || c > '9') {
		return time.Time{}, errors.New("not a number")
	}
	f, err := strconv.ParseFloat(string(value), 64)
	if err != nil {
		return time.Time{}, errors.New("not a representable number")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).Truncate(time.Second), nil
}

// checkClaims makes the checks of jwt's Validator with bookhub's options
// (exp required, nbf and iat not in the future, iss and aud required and
// ours, each time with the leeway), then bookhub's own: sub, a known role,
// iat and jti present.
func (t *Tokens) checkClaims(c *tokenClaims) error {
	now := t.now()
	invalid := func(err error) error { return fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, err) }
	required := func(claim string) error {
		return invalid(fmt.Errorf("%w: %s claim is required", jwt.ErrTokenRequiredClaimMissing, claim))
	}
	switch {
	case c.set&claimExp == 0:
		return required("exp")
	case !now.Before(c.exp.Add(t.leeway)):
		return invalid(jwt.ErrTokenExpired)
	case c.set&claimNbf != 0 && now.Before(c.nbf.Add(-t.leeway)):
		return invalid(jwt.ErrTokenNotValidYet)
	case c.set&claimIat != 0 && now.Before(c.iat.Add(-t.leeway)):
		return invalid(jwt.ErrTokenUsedBeforeIssued)
	case c.audCount == 0 || c.audOnlyEmpty:
		return required("aud")
	case !c.audOurs:
		return invalid(jwt.ErrTokenInvalidAudience)
	}
	if len(c.iss) == 0 {
		return required("iss")
	}
	if string(c.iss) != t.issuer {
		return invalid(jwt.ErrTokenInvalidIssuer)
	}
	switch {
	case len(c.sub) == 0:
		return errors.New("no sub claim")
	case c.role == "":
		return fmt.Errorf("unknown role %q", c.roleRaw)
	case c.set&claimIat == 0:
		return errors.New("no iat claim")
	case len(c.jti) == 0:
		return errors.New("no jti claim")
	}
	return nil
}

// newB64 is the base64 of compact JWS segments: unpadded base64url, strict
// about the unused bits of the last character, so that a signature (and so
// a token) has exactly one spelling.
func newB64() *base64.Encoding { return base64.RawURLEncoding.Strict() }
