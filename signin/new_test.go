package signin_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/signin/oidctest"
)

func TestNewRefuses(t *testing.T) {
	idp := oidctest.Start(t, oidctest.Options{})
	noS256 := oidctest.Start(t, oidctest.Options{CodeChallengeMethods: []string{"plain"}})
	down := oidctest.Start(t, oidctest.Options{})
	down.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)

	good := func() (signin.Config, signin.Options) {
		return signin.Config{
				Name: "test", IssuerURL: idp.Issuer(), ClientID: idp.ClientID(),
				ClientSecret: idp.ClientSecret(), RedirectURL: "http://app.test/auth/test/callback",
			}, signin.Options{
				StateKey: stateKey, HTTPClient: idp.Client(),
			}
	}
	cases := []struct {
		name        string
		tweak       func(*signin.Config, *signin.Options)
		unavailable bool   // want ErrUnavailable
		msg         string // the error must say this
	}{
		{name: "IssuerUnreachable", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = down.Issuer() }, unavailable: true, msg: "discover"},
		{name: "DiscoveryFailing", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = failing.URL }, unavailable: true, msg: "503"},
		{name: "IssuerMismatch", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = idp.Issuer() + "/" }, msg: "did not match"},
		{name: "NoDiscoveryDocument", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = idp.Issuer() + "/nope" }, msg: "404"},
		{name: "NoPKCES256", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = noS256.Issuer() }, msg: "S256"},
		{name: "ShortStateKey", tweak: func(_ *signin.Config, o *signin.Options) { o.StateKey = stateKey[:31] }, msg: "state key"},
		{name: "BadName", tweak: func(c *signin.Config, _ *signin.Options) { c.Name = "Bad Name" }, msg: "name"},
		{name: "EmptyName", tweak: func(c *signin.Config, _ *signin.Options) { c.Name = "" }, msg: "name"},
		{name: "NoIssuer", tweak: func(c *signin.Config, _ *signin.Options) { c.IssuerURL = "" }, msg: "issuer"},
		{name: "NoClientID", tweak: func(c *signin.Config, _ *signin.Options) { c.ClientID = "" }, msg: "client ID"},
		{name: "RelativeRedirect", tweak: func(c *signin.Config, _ *signin.Options) { c.RedirectURL = "/auth/test/callback" }, msg: "redirect URL"},
		{name: "NonHTTPRedirect", tweak: func(c *signin.Config, _ *signin.Options) { c.RedirectURL = "ftp://app.test/cb" }, msg: "redirect URL"},
		{name: "NegativeFlowTTL", tweak: func(_ *signin.Config, o *signin.Options) { o.FlowTTL = -time.Second }, msg: "flow TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cfg, opts := good()
			tc.tweak(&cfg, &opts)
			p, err := signin.New(ctx, cfg, opts)
			if err == nil {
				t.Fatalf("New succeeded (%v), want an error", p.Name())
			}
			if got := errors.Is(err, signin.ErrUnavailable); got != tc.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tc.unavailable)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}

	t.Run("OK", func(t *testing.T) {
		cfg, opts := good()
		p, err := signin.New(t.Context(), cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name() != "test" {
			t.Fatalf("Name() = %q", p.Name())
		}
	})
}

func TestCheckReturnToIsWhatBeginUses(t *testing.T) {
	if err := signin.CheckReturnTo("//evil.example"); !errors.Is(err, signin.ErrInvalidReturnTo) {
		t.Fatalf("CheckReturnTo = %v, want ErrInvalidReturnTo", err)
	}
	if err := signin.CheckReturnTo("/ok"); err != nil {
		t.Fatalf("CheckReturnTo(/ok) = %v", err)
	}
}

func TestErrorHierarchy(t *testing.T) {
	for _, err := range []error{signin.ErrUnavailable, signin.ErrInvalidToken} {
		if !errors.Is(err, signin.ErrProvider) {
			t.Errorf("%v is not ErrProvider", err)
		}
	}
	if errors.Is(signin.ErrUnavailable, signin.ErrInvalidToken) || errors.Is(signin.ErrInvalidToken, signin.ErrUnavailable) {
		t.Error("ErrUnavailable and ErrInvalidToken must stay distinguishable")
	}
}
