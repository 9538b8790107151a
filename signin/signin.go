// Package signin implements "Sign in with <provider>" over OpenID Connect:
// the authorization code flow with PKCE (S256), a state parameter and a
// nonce. It knows nothing of gin, gorm or bookhub's accounts: Begin and
// Finish take a plain http.ResponseWriter and *http.Request, and Finish
// returns who signed in at the provider, leaving it to the caller to map that
// External identity to an account and issue bookhub's own token.
//
// The flow keeps no server-side state. Begin seals the state, nonce, PKCE
// verifier, optional return path and an expiry into one AES-GCM encrypted,
// HttpOnly cookie scoped to the callback path; Finish opens it, checks it and
// clears it. Any number of bookhub instances can therefore finish a flow that
// another one began, as long as they share Options.StateKey.
package signin

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors returned by Begin and Finish. Every error they return, apart from
// Begin's internal failures, wraps exactly one of ErrFlowInvalid,
// ErrInvalidReturnTo, ErrDenied or ErrProvider, so a
// REST layer can map them with errors.Is; the wrapped detail is for logs
// and never contains a code, a token or the cookie.
var (
	// ErrFlowInvalid means the callback does not belong to a sign-in this
	// browser began: the flow cookie is missing, tampered with or expired,
	// ?state does not match it, or ?code is missing. Map it to 400.
	ErrFlowInvalid = errors.New("sign-in flow invalid")
	// ErrInvalidReturnTo means Begin was asked to return somewhere other than
	// a same-origin path. Map it to 400.
	ErrInvalidReturnTo = errors.New("return_to must be a same-origin path")
	// ErrDenied means the provider sent the user back with
	// error=access_denied: the user (or the provider's policy) said no.
	// Map it to 401 or 403.
	ErrDenied = errors.New("sign-in denied at the provider")
	// ErrProvider means the provider did not complete the sign-in. It
	// usually comes as ErrUnavailable or ErrInvalidToken, which say whose
	// fault it likely is; alone, it means the provider called bookhub's
	// request itself wrong (error=invalid_scope, unauthorized_client, ...),
	// a configuration problem: map it to 502 and read the logs.
	ErrProvider = errors.New("sign-in provider failed")
	// ErrUnavailable (which is also ErrProvider) means the provider could
	// not be reached, timed out, answered with a 5xx or 429, or reported
	// server_error / temporarily_unavailable. Map it to 502 or 503.
	ErrUnavailable = fmt.Errorf("%w: unavailable", ErrProvider)
	// ErrInvalidToken (which is also ErrProvider) means the provider answered
	// but what it answered is not acceptable: the code exchange was refused
	// (used or foreign code, wrong PKCE verifier, wrong client credentials)
	// or the ID token failed verification (signature, issuer, audience,
	// expiry, nonce). Map it to 401.
	ErrInvalidToken = fmt.Errorf("%w: invalid token", ErrProvider)
)

// Config describes one OpenID Connect provider registration.
type Config struct {
	// Name identifies the provider in routes, cookies and logs ("google").
	// Lower-case letters, digits, '-' and '_', at most 32 characters.
	Name string
	// IssuerURL is the provider's issuer; discovery is fetched from
	// IssuerURL + "/.well-known/openid-configuration" and the issuer it
	// reports must equal IssuerURL exactly.
	IssuerURL string
	// ClientID and ClientSecret are the client's registration at the
	// provider. ClientSecret may be empty for a public client; otherwise
	// it is sent with HTTP Basic authentication (client_secret_basic).
	ClientID     string
	ClientSecret string
	// RedirectURL is the absolute http(s) callback URL registered at the
	// provider; the route that calls Finish must serve it.
	RedirectURL string
	// Scopes requested; nil means openid, email and profile. "openid" is
	// added when missing.
	Scopes []string
}

// Options tune a Provider. StateKey is required; the rest have defaults.
type Options struct {
	// StateKey seals the flow cookie; at least MinStateKeyLen bytes of
	// secret randomness, shared by every instance that may serve the callback.
	StateKey []byte
	// Now is the clock for the flow's expiry and the ID token's; nil means
	// time.Now.
	Now func() time.Time
	// HTTPClient talks to the provider (discovery, token, JWKS). nil means a
	// client with a 10 second timeout; a client without a timeout is given
	// none, so set one. Its transport is wrapped to treat 5xx and 429 as
	// transport failures, which is how ErrUnavailable is told apart.
	HTTPClient *http.Client
	// FlowTTL is how long a user has between Begin and Finish; zero means
	// DefaultFlowTTL.
	FlowTTL time.Duration
	// SecureCookie forces the Secure attribute on the flow cookie. It is set
	// anyway when RedirectURL is https or the request came over TLS; set this
	// when TLS ends at a proxy in front of an http RedirectURL (unusual).
	SecureCookie bool
	// Logger receives operational events (the provider being unavailable);
	// nil discards them. Codes, tokens and the cookie are never logged.
	Logger *slog.Logger
}

// Defaults and limits.
const (
	// MinStateKeyLen is the shortest Options.StateKey accepted (256 bits).
	MinStateKeyLen = 32
	// DefaultFlowTTL is the default Options.FlowTTL.
	DefaultFlowTTL = 10 * time.Minute
	// DefaultHTTPTimeout bounds each request to the provider when
	// Options.HTTPClient is nil.
	DefaultHTTPTimeout = 10 * time.Second
)

// Provider runs sign-ins against one OpenID Connect provider. It is safe for
// concurrent use.
type Provider struct {
	name     string
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	aead     cipher.AEAD

	cookieName string
	cookiePath string
	secure     bool

	now func() time.Time
	ttl time.Duration
	log *slog.Logger
}

var namePattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// New validates cfg and opts and runs OpenID Connect discovery against
// cfg.IssuerURL, bounded by ctx. It fails with an error wrapping
// ErrUnavailable when the issuer cannot be reached, and with a plain error
// when the configuration is invalid, discovery answers anything but a
// usable document, the discovered issuer differs from cfg.IssuerURL, or the
// provider says it does not support PKCE S256.
func New(ctx context.Context, cfg Config, opts Options) (*Provider, error) {
	redirect, err := validate(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("signin provider %q: %w", cfg.Name, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FlowTTL == 0 {
		opts.FlowTTL = DefaultFlowTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client := classifyingClient(opts.HTTPClient)

	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("signin provider %q: discover %s: %w", cfg.Name, cfg.IssuerURL, unavailableIf(err))
	}
	var meta struct {
		JWKSURL    string   `json:"jwks_uri"`
		Algorithms []string `json:"id_token_signing_alg_values_supported"`
		Methods    []string `json:"code_challenge_methods_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("signin provider %q: read discovery document: %w", cfg.Name, err)
	}
	if meta.JWKSURL == "" {
		return nil, fmt.Errorf("signin provider %q: discovery document has no jwks_uri", cfg.Name)
	}
	// Providers often omit the list; only refuse one that says S256 is out.
	if len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "S256") {
		return nil, fmt.Errorf("signin provider %q: provider does not support PKCE S256 (supports %v)", cfg.Name, meta.Methods)
	}

	aead, err := sealer(opts.StateKey, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("signin provider %q: %w", cfg.Name, err)
	}
	scopes := cfg.Scopes
	if scopes == nil {
		scopes = []string{oidc.ScopeOpenID, "email", "profile"}
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	// RFC 6749 §2.3.1 makes HTTP Basic mandatory for providers, so it is
	// used whenever there is a secret. x/oauth2's auto-detection would
	// instead retry a refused exchange with the credentials in the body,
	// presenting the same code twice.
	style := oauth2.AuthStyleInHeader
	if cfg.ClientSecret == "" {
		style = oauth2.AuthStyleInParams
	}
	endpoint := op.Endpoint()
	endpoint.AuthStyle = style
	return &Provider{
		name: cfg.Name,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       scopes,
		},
		// The key set is built here rather than by op.Verifier so that
		// Finish can tell an unreachable JWKS endpoint from a bad signature.
		verifier: oidc.NewVerifier(cfg.IssuerURL,
			newKeySet(oidc.ClientContext(context.Background(), client), meta.JWKSURL),
			&oidc.Config{ClientID: cfg.ClientID, Now: opts.Now, SupportedSigningAlgs: signingAlgs(meta.Algorithms)}),
		client:     client,
		aead:       aead,
		cookieName: "bookhub_signin_" + cfg.Name,
		cookiePath: redirect.Path,
		secure:     opts.SecureCookie || redirect.Scheme == "https",
		now:        opts.Now,
		ttl:        opts.FlowTTL,
		log:        opts.Logger.With(slog.String("provider", cfg.Name)),
	}, nil
}

// Name returns Config.Name.
func (p *Provider) Name() string { return p.name }

// signingAlgs keeps the asymmetric algorithms go-oidc verifies, so that a
// discovery document listing "HS256" or "none" cannot widen what is
// accepted. An empty result makes go-oidc fall back to RS256.
func signingAlgs(advertised []string) []string {
	var algs []string
	for _, a := range advertised {
		switch a {
		case oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
			oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA:
			algs = append(algs, a)
		}
	}
	return algs
}

func validate(cfg Config, opts Options) (*url.URL, error) {
	if !namePattern.MatchString(cfg.Name) {
		return nil, errors.New("name must be 1-32 of a-z, 0-9, '-', '_'")
	}
	if cfg.IssuerURL == "" {
		return nil, errors.New("issuer URL is empty")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("client ID is empty")
	}
	u, err := url.Parse(cfg.RedirectURL)
	if err != nil {
		return nil, fmt.Errorf("redirect URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("redirect URL %q is not an absolute http(s) URL", cfg.RedirectURL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if len(opts.StateKey) < MinStateKeyLen {
		return nil, fmt.Errorf("state key is %d bytes, want at least %d", len(opts.StateKey), MinStateKeyLen)
	}
	if opts.FlowTTL < 0 {
		return nil, fmt.Errorf("flow TTL %s is negative", opts.FlowTTL)
	}
	return u, nil
}

// sealer derives a per-provider AES-256-GCM key from the state key, so one
// StateKey can serve several providers (and other uses) without their
// cookies being interchangeable.
func sealer(stateKey []byte, name string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, stateKey, nil, "bookhub signin flow v1 "+name, 32)
	if err != nil {
		return nil, fmt.Errorf("derive cookie key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("cookie cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("cookie cipher: %w", err)
	}
	return aead, nil
}
