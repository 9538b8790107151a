package signin

import (
	"fmt"
	"math"
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Begin starts a sign-in. It draws a fresh state, nonce and PKCE verifier,
// seals them with the optional ?return_to path and an expiry FlowTTL from
// now into an HttpOnly, SameSite=Lax cookie scoped to the callback path
// (Secure when RedirectURL is https, the request came over TLS or
// Options.SecureCookie is set), and redirects 302 to the provider's
// authorization endpoint with an S256 code challenge.
//
// It writes nothing and returns an error wrapping ErrInvalidReturnTo when
// ?return_to is not a same-origin path (see CheckReturnTo); any other error
// is an internal failure (no randomness). A second Begin in the same
// browser replaces the first flow's cookie, so only the latest of two
// concurrent sign-ins can finish.
func (p *Provider) Begin(w http.ResponseWriter, r *http.Request) error {
	returnTo := r.URL.Query().Get("return_to")
	if err := CheckReturnTo(returnTo); err != nil {
		return fmt.Errorf("begin sign-in with %s: %w", p.name, err)
	}
	state, err := randomToken()
	if err != nil {
		return fmt.Errorf("begin sign-in with %s: state: %w", p.name, err)
	}
	nonce, err := randomToken()
	if err != nil {
		return fmt.Errorf("begin sign-in with %s: nonce: %w", p.name, err)
	}
	f := flow{
		State:    state,
		Nonce:    nonce,
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: returnTo,
		Expires:  p.now().Add(p.ttl).Unix(),
	}
	sealed, err := p.seal(f)
	if err != nil {
		return fmt.Errorf("begin sign-in with %s: %w", p.name, err)
	}
	http.SetCookie(w, p.cookie(r, sealed, int(math.Ceil(p.ttl.Seconds()))))
	// The redirect carries the state and challenge; no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusFound)
	return nil
}
