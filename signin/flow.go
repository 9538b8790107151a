package signin

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// flow is what Begin hands to Finish through the browser. It is sealed
// (encrypted and authenticated) so the browser can neither read the PKCE
// verifier nor change any field.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r,omitempty"`
	Expires  int64  `json:"e"` // Unix seconds
}

// maxCookieLen bounds what open will try to decode; a sealed flow is a few
// hundred bytes, a browser allows about 4 KiB.
const maxCookieLen = 4096

// seal encrypts f with a fresh random nonce. The cookie name is the
// additional data, so a flow sealed for one cookie cannot be replayed in
// another.
func (p *Provider) seal(f flow) (string, error) {
	plain, err := json.Marshal(f)
	if err != nil {
		return "", fmt.Errorf("encode flow: %w", err)
	}
	nonce := make([]byte, p.aead.NonceSize(), p.aead.NonceSize()+len(plain)+p.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("flow nonce: %w", err)
	}
	sealed := p.aead.Seal(nonce, nonce, plain, []byte(p.cookieName))
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// open reverses seal and checks the expiry. Every failure wraps
// ErrFlowInvalid.
func (p *Provider) open(value string) (flow, error) {
	if len(value) > maxCookieLen {
		return flow{}, fmt.Errorf("%w: flow cookie too long", ErrFlowInvalid)
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < p.aead.NonceSize() {
		return flow{}, fmt.Errorf("%w: flow cookie malformed", ErrFlowInvalid)
	}
	ns := p.aead.NonceSize()
	plain, err := p.aead.Open(nil, raw[:ns], raw[ns:], []byte(p.cookieName))
	if err != nil {
		return flow{}, fmt.Errorf("%w: flow cookie does not authenticate", ErrFlowInvalid)
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil {
		return flow{}, fmt.Errorf("%w: decode flow: %w", ErrFlowInvalid, err)
	}
	if f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return flow{}, fmt.Errorf("%w: flow cookie incomplete", ErrFlowInvalid)
	}
	if !p.now().Before(time.Unix(f.Expires, 0)) {
		return flow{}, fmt.Errorf("%w: sign-in flow expired at %s", ErrFlowInvalid, time.Unix(f.Expires, 0).UTC().Format(time.RFC3339))
	}
	return f, nil
}

// cookie returns the flow cookie with value; maxAge < 0 deletes it.
func (p *Provider) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     p.cookieName,
		Value:    value,
		Path:     p.cookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   p.secure || r.TLS != nil,
		// Lax, not Strict: the callback is a top-level navigation coming
		// from the provider's site, which Strict would strip the cookie from.
		SameSite: http.SameSiteLaxMode,
	}
}

// randomToken returns 32 bytes of randomness, base64url encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// maxReturnToLen bounds ?return_to, which travels inside the cookie.
const maxReturnToLen = 1024

// CheckReturnTo reports whether s is an acceptable return path: a path on
// this origin ("/dashboard", "/books?page=2"). It refuses anything a browser
// could resolve to another origin: absolute URLs ("https://evil.example"),
// protocol-relative ones ("//evil.example"), backslashes ("/\evil.example",
// which browsers treat as "//"), control characters (browsers strip tabs
// and newlines, turning "/\t/evil" into "//evil"), and paths not starting
// with "/". The error wraps ErrInvalidReturnTo. An empty s is accepted and
// means "no return path".
func CheckReturnTo(s string) error {
	if s == "" {
		return nil
	}
	switch {
	case len(s) > maxReturnToLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidReturnTo, maxReturnToLen)
	case s[0] != '/':
		return fmt.Errorf("%w: does not start with /", ErrInvalidReturnTo)
	case strings.HasPrefix(s, "//"):
		return fmt.Errorf("%w: protocol-relative URL", ErrInvalidReturnTo)
	case strings.ContainsRune(s, '\\'):
		return fmt.Errorf("%w: contains a backslash", ErrInvalidReturnTo)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: contains a control character", ErrInvalidReturnTo)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidReturnTo, err)
	}
	if u.Scheme != "" || u.Host != "" || u.User != nil {
		// Unreachable after the checks above; kept as a backstop.
		return fmt.Errorf("%w: resolves to another origin", ErrInvalidReturnTo)
	}
	return nil
}
