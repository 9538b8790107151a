package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/signin"
)

// authRoutes registers sign-in, user management and the WebSocket ticket.
// Each route names the role it needs here, where it is registered; the
// handlers contain no role checks.
func (a *api) authRoutes(v1 *gin.RouterGroup) {
	public := v1.Group("/auth", noStore)
	public.POST("/login", requireJSON(false), handle(a.login))
	public.POST("/refresh", requireJSON(false), handle(a.refresh))
	public.POST("/logout", requireJSON(false), handle(a.logout))
	public.POST("/register", requireJSON(false), handle(a.register))
	get(public, "/providers", handle(a.providers))
	get(public, "/oidc/:provider/login", handle(a.oidcBegin))
	get(public, "/oidc/:provider/callback", handle(a.oidcFinish))

	viewer := v1.Group("", a.requireRole(auth.RoleViewer), noStore)
	get(viewer, "/auth/me", handle(a.me))
	viewer.POST("/ws-ticket", handle(a.wsTicket))

	admin := v1.Group("/users", a.requireRole(auth.RoleAdmin), noStore)
	admin.POST("", requireJSON(false), handle(a.createUser))
	get(admin, "", handle(a.listUsers))
	get(admin, "/:id", a.userID, handle(a.getUser))
	admin.PATCH("/:id", a.userID, requireJSON(true), handle(a.patchUser))
}

// noStore keeps tokens and account data out of caches (RFC 6749 §5.1).
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// tokenJSON is the body of every successful sign-in and refresh.
type tokenJSON struct {
	AccessToken      string   `json:"access_token"`
	TokenType        string   `json:"token_type"`
	ExpiresIn        int64    `json:"expires_in"`
	ExpiresAt        string   `json:"expires_at"`
	RefreshToken     string   `json:"refresh_token"`
	RefreshExpiresAt string   `json:"refresh_expires_at"`
	User             userJSON `json:"user"`
}

func (a *api) writePair(c *gin.Context, status int, p accounts.Pair) error {
	body, err := json.Marshal(tokenJSON{
		AccessToken: p.AccessToken, TokenType: "Bearer",
		ExpiresIn:    int64(time.Until(p.AccessExpiresAt).Round(time.Second) / time.Second),
		ExpiresAt:    formatTime(p.AccessExpiresAt),
		RefreshToken: p.RefreshToken, RefreshExpiresAt: formatTime(p.RefreshExpiresAt),
		User: toUserJSON(p.User),
	})
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	c.Data(status, contentTypeJSON, body)
	return nil
}

func (a *api) login(c *gin.Context) error {
	in, err := a.decodeStrings(c, fieldSpec{required: []string{"email", "password"}})
	if err != nil {
		return err
	}
	p, err := a.accounts.Login(c.Request.Context(), in["email"], in["password"], c.ClientIP())
	if err != nil {
		return err
	}
	return a.writePair(c, http.StatusOK, p)
}

func (a *api) refresh(c *gin.Context) error {
	in, err := a.decodeStrings(c, fieldSpec{required: []string{"refresh_token"}})
	if err != nil {
		return err
	}
	p, err := a.accounts.Refresh(c.Request.Context(), in["refresh_token"], c.ClientIP())
	if err != nil {
		return err
	}
	return a.writePair(c, http.StatusOK, p)
}

func (a *api) logout(c *gin.Context) error {
	in, err := a.decodeStrings(c, fieldSpec{required: []string{"refresh_token"}})
	if err != nil {
		return err
	}
	if err := a.accounts.Logout(c.Request.Context(), in["refresh_token"]); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}

func (a *api) register(c *gin.Context) error {
	in, err := a.decodeStrings(c, fieldSpec{required: []string{"email", "password", "display_name"}})
	if err != nil {
		return err
	}
	p, err := a.accounts.Register(c.Request.Context(), accounts.Registration{Email: in["email"],
		DisplayName: in["display_name"], Password: in["password"], ClientAddr: c.ClientIP()})
	if err != nil {
		return err
	}
	c.Header("Location", usersPath+"/"+fmt.Sprint(p.User.ID))
	return a.writePair(c, http.StatusCreated, p)
}

func (a *api) me(c *gin.Context) error {
	u, err := a.accounts.Me(c.Request.Context(), identityOf(c))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toUserJSON(u))
}

// wsTicket trades the caller's access token for a one-time ticket, so a
// browser opens its socket with /ws?ticket=... instead of a token in the URL.
func (a *api) wsTicket(c *gin.Context) error {
	t, err := a.accounts.IssueTicket(c.Request.Context(), auth.FromHeader(c.Request))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusCreated, struct {
		Ticket    string `json:"ticket"`
		ExpiresAt string `json:"expires_at"`
	}{t.Value, formatTime(t.ExpiresAt)})
}

func (a *api) providers(c *gin.Context) error {
	type providerJSON struct {
		Name     string `json:"name"`
		LoginURL string `json:"login_url"`
	}
	out := struct {
		Providers    []providerJSON `json:"providers"`
		Registration bool           `json:"registration"`
	}{Providers: []providerJSON{}, Registration: a.allowRegistration}
	for _, p := range a.signIn {
		out.Providers = append(out.Providers, providerJSON{p.Name(), "/api/v1/auth/oidc/" + p.Name() + "/login"})
	}
	return writeJSON(c, http.StatusOK, out)
}

func (a *api) provider(c *gin.Context) (SignInProvider, error) {
	name := c.Param("provider")
	for _, p := range a.signIn {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, newError(kindNotFound, "no sign-in provider has this name; see /api/v1/auth/providers")
}

func (a *api) oidcBegin(c *gin.Context) error {
	p, err := a.provider(c)
	if err != nil {
		return err
	}
	return p.Begin(c.Writer, c.Request)
}

func (a *api) oidcFinish(c *gin.Context) error {
	p, err := a.provider(c)
	if err != nil {
		return err
	}
	ext, err := p.Finish(c.Writer, c.Request)
	if err != nil {
		return err
	}
	pair, err := a.accounts.SignInExternal(c.Request.Context(), accounts.External{Issuer: ext.Issuer,
		Subject: ext.Subject, Email: ext.Email, EmailVerified: ext.EmailVerified, Name: ext.Name})
	if err != nil {
		return err
	}
	return a.writePair(c, http.StatusOK, pair)
}

// classifyAccounts maps the errors of sign-in and user management; it is
// part of classify, kept here next to the routes that raise them.
func classifyAccounts(c *gin.Context, err error) *apiError {
	var rl *accounts.RateLimitedError
	switch {
	case errors.As(err, &rl):
		secs := int64((rl.RetryAfter + time.Second - 1) / time.Second)
		c.Header("Retry-After", fmt.Sprint(secs))
		return newErrorf(kindTooManyRequests, "too many attempts; retry in %d s", secs)
	case errors.Is(err, accounts.ErrBadCredentials):
		return newError(kindBadCredentials, "the email or the password is wrong")
	case errors.Is(err, accounts.ErrDisabled):
		return newError(kindAccountDisabled, "this account is disabled; ask an administrator")
	case errors.Is(err, accounts.ErrRefreshInvalid):
		return newError(kindBadRefresh, "the refresh token is invalid, expired or revoked; sign in again")
	case errors.Is(err, accounts.ErrRegistrationClosed):
		return newError(kindRegistrationClosed, "self-registration is turned off here; ask an administrator for an account")
	case errors.Is(err, accounts.ErrSelfChange):
		return newError(kindSelfChange, "admins cannot change their own role or disable themselves; ask another admin")
	case errors.Is(err, accounts.ErrNotAUser):
		return newError(kindNotFound, "the token's subject is not a bookhub user (a development token?)")
	case errors.Is(err, accounts.ErrEmailTaken):
		return &apiError{kind: kindConflict, detail: "an account with this email exists, and the provider does not vouch for the email; sign in with the account's password",
			fields: []fieldError{{Field: "email", Message: "is already in use"}}}
	case errors.Is(err, auth.ErrWeakPassword):
		return &apiError{kind: kindValidation, detail: err.Error(),
			fields: []fieldError{{Field: "password", Message: errors.Unwrap(err).Error()}}}
	case errors.Is(err, signin.ErrFlowInvalid):
		return newError(kindInvalidParameter, "the sign-in attempt is invalid or expired; start again")
	case errors.Is(err, signin.ErrInvalidReturnTo):
		return &apiError{kind: kindInvalidParameter, detail: "return_to must be a path on this site, like /dashboard",
			fields: []fieldError{{Field: "return_to", Message: "must be a same-origin path"}}}
	case errors.Is(err, signin.ErrDenied):
		return newError(kindSignInDenied, "the provider did not let you sign in")
	case errors.Is(err, signin.ErrInvalidToken):
		return &apiError{kind: kindSignInFailed, detail: "the provider's answer did not verify; start again", cause: err}
	case errors.Is(err, signin.ErrUnavailable):
		c.Header("Retry-After", "10")
		return &apiError{kind: kindBadGateway, detail: "the sign-in provider is unreachable; try again later", cause: err}
	case errors.Is(err, signin.ErrProvider):
		return &apiError{kind: kindBadGateway, detail: "the sign-in provider refused the request; the operator should check its configuration", cause: err}
	}
	return nil
}

// The problem kinds of sign-in and user management.
var (
	kindTooManyRequests    = newKind(http.StatusTooManyRequests, "rate-limited", "Too many requests")
	kindBadCredentials     = newKind(http.StatusUnauthorized, "invalid-credentials", "Invalid credentials")
	kindBadRefresh         = newKind(http.StatusUnauthorized, "invalid-refresh-token", "Invalid refresh token")
	kindAccountDisabled    = newKind(http.StatusForbidden, "account-disabled", "Account disabled")
	kindRegistrationClosed = newKind(http.StatusForbidden, "registration-closed", "Registration closed")
	kindSelfChange         = newKind(http.StatusConflict, "self-change", "Cannot change your own access")
	kindSignInDenied       = newKind(http.StatusForbidden, "sign-in-denied", "Sign-in denied")
	kindSignInFailed       = newKind(http.StatusUnauthorized, "sign-in-failed", "Sign-in failed")
	kindBadGateway         = newKind(http.StatusBadGateway, "provider-failed", "Sign-in provider failed")
)

// identityOf returns the identity requireRole verified.
func identityOf(c *gin.Context) auth.Identity {
	v, _ := c.Get(keyIdentity)
	id, _ := v.(auth.Identity)
	return id
}

func writeJSON(c *gin.Context, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	c.Data(status, contentTypeJSON, body)
	return nil
}
