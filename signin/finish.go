package signin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// External is who signed in at the provider, as its verified ID token says.
type External struct {
	// Issuer and Subject together are the stable identity: link accounts
	// on this pair, never on Email, which the user can change at the
	// provider (and which some providers do not verify).
	Issuer  string
	Subject string
	// Email, EmailVerified and Name are the standard claims, empty or false
	// when the provider did not send them.
	Email         string
	EmailVerified bool
	Name          string
	// ReturnTo is the same-origin path given to Begin's ?return_to, or "".
	ReturnTo string
}

// Finish completes a sign-in on the provider's redirect back to
// RedirectURL. In order, it requires the flow cookie to be present, intact
// and unexpired, ?state to equal the sealed state (constant time), no
// ?error, and a ?code; it then exchanges the code with the sealed PKCE
// verifier and verifies the ID token's signature against the provider's
// JWKS, its issuer, its audience (the client ID), its expiry, its nonce
// against the sealed one, and its at_hash when present.
//
// Finish clears the flow cookie whatever the outcome, so a callback can be
// used once; a replayed code is also refused by the provider. Errors wrap
// ErrFlowInvalid, ErrDenied or ErrProvider (with ErrUnavailable or
// ErrInvalidToken); see their docs for the HTTP status each deserves.
// The caller writes the response; Finish only sets headers.
func (p *Provider) Finish(w http.ResponseWriter, r *http.Request) (External, error) {
	ext, err := p.finish(w, r)
	if err != nil {
		switch {
		case errors.Is(err, ErrUnavailable):
			p.log.LogAttrs(r.Context(), slog.LevelWarn, "sign-in provider unavailable", slog.String("error", err.Error()))
		case errors.Is(err, ErrProvider) && !errors.Is(err, ErrInvalidToken):
			p.log.LogAttrs(r.Context(), slog.LevelError, "sign-in provider refused the request; check the client registration", slog.String("error", err.Error()))
		}
		return External{}, fmt.Errorf("finish sign-in with %s: %w", p.name, err)
	}
	return ext, nil
}

func (p *Provider) finish(w http.ResponseWriter, r *http.Request) (External, error) {
	c, err := r.Cookie(p.cookieName)
	if err != nil {
		return External{}, fmt.Errorf("%w: no flow cookie (sign-in not begun here, expired, or already finished)", ErrFlowInvalid)
	}
	// Single use: whatever happens next, this flow is over.
	http.SetCookie(w, p.cookie(r, "", -1))
	w.Header().Set("Cache-Control", "no-store")

	f, err := p.open(c.Value)
	if err != nil {
		return External{}, err
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return External{}, fmt.Errorf("%w: state does not match the flow cookie", ErrFlowInvalid)
	}
	if code := q.Get("error"); code != "" {
		return External{}, authorizationError(code)
	}
	code := q.Get("code")
	if code == "" {
		return External{}, fmt.Errorf("%w: callback has no code", ErrFlowInvalid)
	}

	ctx := oidc.ClientContext(r.Context(), p.client)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return External{}, exchangeError(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return External{}, fmt.Errorf("%w: token response has no id_token", ErrInvalidToken)
	}
	var keysErr error
	idt, err := p.verifier.Verify(context.WithValue(ctx, keySetErrKey{}, &keysErr), raw)
	if err != nil {
		if keysErr != nil && isUnavailable(keysErr) {
			return External{}, fmt.Errorf("%w: fetch signing keys: %w", ErrUnavailable, keysErr)
		}
		return External{}, fmt.Errorf("%w: verify ID token: %w", ErrInvalidToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return External{}, fmt.Errorf("%w: ID token nonce does not match the flow", ErrInvalidToken)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return External{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
	}
	if idt.Subject == "" {
		return External{}, fmt.Errorf("%w: ID token has no sub", ErrInvalidToken)
	}
	var claims struct {
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
		Name          string          `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return External{}, fmt.Errorf("%w: decode ID token claims: %w", ErrInvalidToken, err)
	}
	return External{
		Issuer:        idt.Issuer,
		Subject:       idt.Subject,
		Email:         claims.Email,
		EmailVerified: truthy(claims.EmailVerified),
		Name:          claims.Name,
		ReturnTo:      f.ReturnTo,
	}, nil
}

// truthy reads email_verified, which some providers send as the string
// "true" rather than a JSON boolean. Anything else is false.
func truthy(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "true" || s == `"true"`
}

// authorizationError maps an RFC 6749 §4.1.2.1 error code. The code is
// echoed only after sanitising: it came through the browser and anyone can
// put anything in a query string. error_description is never used.
func authorizationError(code string) error {
	safe := strings.Map(func(r rune) rune {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, code)
	if len(safe) > 64 {
		safe = safe[:64]
	}
	switch code {
	case "access_denied":
		return fmt.Errorf("%w: provider returned error=access_denied", ErrDenied)
	case "server_error", "temporarily_unavailable":
		return fmt.Errorf("%w: provider returned error=%s", ErrUnavailable, safe)
	default:
		// invalid_request, unauthorized_client, invalid_scope, ...: the
		// request bookhub sent is wrong, which is a configuration problem.
		return fmt.Errorf("%w: provider returned error=%s", ErrProvider, safe)
	}
}

// exchangeError classifies a failed code exchange. The provider's error
// body is not included: only its RFC 6749 error code and HTTP status.
func exchangeError(err error) error {
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("%w: token endpoint refused the code: error=%q (HTTP %d)", ErrInvalidToken, re.ErrorCode, status)
	case isUnavailable(err):
		return fmt.Errorf("%w: exchange code: %w", ErrUnavailable, err)
	default:
		return fmt.Errorf("%w: exchange code: %w", ErrInvalidToken, err)
	}
}
