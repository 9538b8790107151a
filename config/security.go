package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Environment variables of accounts and tokens (see README "Security").
const (
	EnvAccessTTL    = "BOOKHUB_ACCESS_TTL"
	EnvRefreshTTL   = "BOOKHUB_REFRESH_TTL"
	EnvRefreshGrace = "BOOKHUB_REFRESH_GRACE"
	EnvJWTIssuer    = "BOOKHUB_JWT_ISSUER"
	EnvJWTAudience  = "BOOKHUB_JWT_AUDIENCE"
	// EnvJWTKeyFile names a PKCS#8 PEM Ed25519 private key: tokens are then
	// signed with EdDSA and /.well-known/jwks.json publishes the public key.
	// Unset, tokens are HS256 with BOOKHUB_JWT_SECRET.
	EnvJWTKeyFile = "BOOKHUB_JWT_KEY_FILE"
	// EnvJWTPreviousSecrets and EnvJWTPreviousKeyFiles list retired keys
	// (comma-separated) that still verify tokens until they expire.
	EnvJWTPreviousSecrets  = "BOOKHUB_JWT_PREVIOUS_SECRETS"
	EnvJWTPreviousKeyFiles = "BOOKHUB_JWT_PREVIOUS_KEY_FILES"
	EnvAllowRegistration   = "BOOKHUB_ALLOW_REGISTRATION"
	EnvBootstrapEmail      = "BOOKHUB_BOOTSTRAP_ADMIN_EMAIL"
	EnvBootstrapPassword   = "BOOKHUB_BOOTSTRAP_ADMIN_PASSWORD"
	EnvOIDCName            = "BOOKHUB_OIDC_NAME"
	EnvOIDCIssuer          = "BOOKHUB_OIDC_ISSUER"
	EnvOIDCClientID        = "BOOKHUB_OIDC_CLIENT_ID"
	EnvOIDCClientSecret    = "BOOKHUB_OIDC_CLIENT_SECRET"
	EnvOIDCRedirectURL     = "BOOKHUB_OIDC_REDIRECT_URL"
	EnvCORSOrigins         = "BOOKHUB_CORS_ORIGINS"
	EnvTrustedProxies      = "BOOKHUB_TRUSTED_PROXIES"
	EnvLoginRateAccount    = "BOOKHUB_LOGIN_RATE_ACCOUNT"
	EnvLoginRateAddress    = "BOOKHUB_LOGIN_RATE_ADDRESS"
	EnvRefreshRate         = "BOOKHUB_REFRESH_RATE"
)

func securityEnvNames() []string {
	return []string{EnvAccessTTL, EnvRefreshTTL, EnvRefreshGrace, EnvJWTIssuer, EnvJWTAudience,
		EnvJWTKeyFile, EnvJWTPreviousSecrets, EnvJWTPreviousKeyFiles, EnvAllowRegistration,
		EnvBootstrapEmail, EnvBootstrapPassword, EnvOIDCName, EnvOIDCIssuer, EnvOIDCClientID,
		EnvOIDCClientSecret, EnvOIDCRedirectURL, EnvCORSOrigins, EnvTrustedProxies,
		EnvLoginRateAccount, EnvLoginRateAddress, EnvRefreshRate}
}

// Rate is a number of attempts per window ("5/1m").
type Rate struct {
	Requests int
	Window   time.Duration
}

// String renders the rate as it is written in the environment.
func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Requests, r.Window) }

// OIDCProvider is one "Sign in with ..." provider.
type OIDCProvider struct {
	// Name appears in URLs: /api/v1/auth/oidc/<name>/login.
	Name, Issuer, ClientID string
	ClientSecret           Secret
	// RedirectURL is this service's callback as registered at the
	// provider: https://<host>/api/v1/auth/oidc/<name>/callback.
	RedirectURL string
}

// Security holds the settings of accounts and tokens.
type Security struct {
	AccessTTL, RefreshTTL, RefreshGrace time.Duration
	Issuer, Audience                    string
	KeyFile                             string
	PreviousSecrets                     []Secret
	PreviousKeyFiles                    []string
	AllowRegistration                   bool
	BootstrapEmail                      string
	BootstrapPassword                   Secret
	OIDC                                []OIDCProvider
	CORSOrigins                         []string
	TrustedProxies                      []string
	LoginRateAccount, LoginRateAddress  Rate
	RefreshRate                         Rate
}

// Defaults of the security settings.
const (
	DefaultAccessTTL    = 15 * time.Minute
	DefaultRefreshTTL   = 30 * 24 * time.Hour
	DefaultRefreshGrace = 10 * time.Second
)

// Default rates: a person mistyping a password a few times never meets
// them; a password-guessing script meets them within seconds.
var (
	DefaultLoginRateAccount = Rate{Requests: 10, Window: 15 * time.Minute}
	DefaultLoginRateAddress = Rate{Requests: 50, Window: 15 * time.Minute}
	DefaultRefreshRate      = Rate{Requests: 60, Window: time.Minute}
)

func loadSecurity(getenv func(string) string) (Security, []error) {
	s := Security{
		Issuer:           envOr(getenv, EnvJWTIssuer, "bookhub"),
		Audience:         envOr(getenv, EnvJWTAudience, "bookhub"),
		KeyFile:          strings.TrimSpace(getenv(EnvJWTKeyFile)),
		PreviousKeyFiles: splitList(getenv(EnvJWTPreviousKeyFiles)),
		BootstrapEmail:   strings.TrimSpace(getenv(EnvBootstrapEmail)),
		// The password is taken as is: spaces may be part of it.
		BootstrapPassword: Secret(getenv(EnvBootstrapPassword)),
		CORSOrigins:       splitList(getenv(EnvCORSOrigins)),
		TrustedProxies:    splitList(getenv(EnvTrustedProxies)),
	}
	for _, v := range splitList(getenv(EnvJWTPreviousSecrets)) {
		s.PreviousSecrets = append(s.PreviousSecrets, Secret(v))
	}
	var errs []error
	dur := func(name string, def time.Duration, dst *time.Duration, allowZero bool) {
		v := getenv(name)
		if v == "" {
			*dst = def
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration like 15m", name, v))
			return
		}
		*dst = d
	}
	dur(EnvAccessTTL, DefaultAccessTTL, &s.AccessTTL, false)
	dur(EnvRefreshTTL, DefaultRefreshTTL, &s.RefreshTTL, false)
	dur(EnvRefreshGrace, DefaultRefreshGrace, &s.RefreshGrace, true)
	if s.AccessTTL > time.Hour {
		errs = append(errs, fmt.Errorf("%s: %s is longer than 1h; access tokens cannot be recalled before they expire except through the revocation list, keep them short", EnvAccessTTL, s.AccessTTL))
	}
	reg := envOr(getenv, EnvAllowRegistration, "true")
	var err error
	if s.AllowRegistration, err = parseBool(EnvAllowRegistration, reg); err != nil {
		errs = append(errs, err)
	}
	if (s.BootstrapEmail == "") != (s.BootstrapPassword == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvBootstrapEmail, EnvBootstrapPassword))
	}
	rate := func(name string, def Rate, dst *Rate) {
		v := getenv(name)
		if v == "" {
			*dst = def
			return
		}
		r, err := parseRate(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		*dst = r
	}
	rate(EnvLoginRateAccount, DefaultLoginRateAccount, &s.LoginRateAccount)
	rate(EnvLoginRateAddress, DefaultLoginRateAddress, &s.LoginRateAddress)
	rate(EnvRefreshRate, DefaultRefreshRate, &s.RefreshRate)
	if p, perr := loadOIDC(getenv); perr != nil {
		errs = append(errs, perr)
	} else if p != nil {
		s.OIDC = append(s.OIDC, *p)
	}
	return s, errs
}

func loadOIDC(getenv func(string) string) (*OIDCProvider, error) {
	p := OIDCProvider{Name: envOr(getenv, EnvOIDCName, "oidc"), Issuer: strings.TrimSpace(getenv(EnvOIDCIssuer)),
		ClientID: strings.TrimSpace(getenv(EnvOIDCClientID)), ClientSecret: Secret(getenv(EnvOIDCClientSecret)),
		RedirectURL: strings.TrimSpace(getenv(EnvOIDCRedirectURL))}
	if p.Issuer == "" && p.ClientID == "" && p.ClientSecret == "" && p.RedirectURL == "" {
		return nil, nil
	}
	if p.Issuer == "" || p.ClientID == "" || p.RedirectURL == "" {
		return nil, fmt.Errorf("%s, %s and %s are all required to enable OIDC sign-in", EnvOIDCIssuer, EnvOIDCClientID, EnvOIDCRedirectURL)
	}
	for name, v := range map[string]string{EnvOIDCIssuer: p.Issuer, EnvOIDCRedirectURL: p.RedirectURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%s: want an absolute https:// URL", name)
		}
	}
	for _, r := range p.Name {
		if !nameRune(r) {
			return nil, fmt.Errorf("%s: %q may hold only a-z, 0-9 and -", EnvOIDCName, p.Name)
		}
	}
	return &p, nil
}

func parseRate(v string) (Rate, error) {
	n, w, ok := strings.Cut(strings.TrimSpace(v), "/")
	req, err := strconv.Atoi(n)
	if !ok || err != nil || req < 1 {
		return Rate{}, fmt.Errorf("%q is not <requests>/<window> like 10/15m", v)
	}
	d, err := time.ParseDuration(w)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%q is not <requests>/<window> like 10/15m", v)
	}
	return Rate{Requests: req, Window: d}, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// nameRune reports whether r may appear in a provider name (a URL segment).
func nameRune(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' }
