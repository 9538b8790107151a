package config_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/config"
)

func TestSecurityDefaults(t *testing.T) {
	c, err := config.Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Security
	if s.AccessTTL != 15*time.Minute || s.RefreshTTL != 30*24*time.Hour || s.RefreshGrace != 10*time.Second ||
		s.Issuer != "bookhub" || s.Audience != "bookhub" || !s.AllowRegistration || len(s.OIDC) != 0 ||
		len(s.CORSOrigins) != 0 || len(s.TrustedProxies) != 0 || s.LoginRateAccount != config.DefaultLoginRateAccount {
		t.Fatalf("security defaults = %+v", s)
	}
}

func TestSecuritySettings(t *testing.T) {
	c, err := config.Load(nil, env(map[string]string{
		config.EnvAccessTTL: "5m", config.EnvRefreshGrace: "0", config.EnvAllowRegistration: "false",
		config.EnvCORSOrigins: "https://a.example, https://b.example", config.EnvTrustedProxies: "10.0.0.0/8",
		config.EnvLoginRateAccount: "3/1m", config.EnvJWTPreviousSecrets: goodSecret + "," + goodSecret + "x",
		config.EnvOIDCIssuer: "https://idp.example", config.EnvOIDCClientID: "bookhub",
		config.EnvOIDCRedirectURL: "https://bookhub.example/api/v1/auth/oidc/oidc/callback",
		config.EnvBootstrapEmail:  "root@example.com", config.EnvBootstrapPassword: "a long passphrase",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Security
	if s.AccessTTL != 5*time.Minute || s.RefreshGrace != 0 || s.AllowRegistration || len(s.CORSOrigins) != 2 ||
		s.LoginRateAccount != (config.Rate{Requests: 3, Window: time.Minute}) || len(s.PreviousSecrets) != 2 ||
		len(s.OIDC) != 1 || s.OIDC[0].Name != "oidc" || s.BootstrapEmail != "root@example.com" {
		t.Fatalf("security = %+v", s)
	}
}

func TestSecurityRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"access ttl not a duration": {map[string]string{config.EnvAccessTTL: "soon"}, config.EnvAccessTTL},
		"access ttl zero":           {map[string]string{config.EnvAccessTTL: "0"}, config.EnvAccessTTL},
		"access ttl over an hour":   {map[string]string{config.EnvAccessTTL: "2h"}, "longer than 1h"},
		"negative grace":            {map[string]string{config.EnvRefreshGrace: "-1s"}, config.EnvRefreshGrace},
		"registration not a bool":   {map[string]string{config.EnvAllowRegistration: "maybe"}, config.EnvAllowRegistration},
		"bootstrap email alone":     {map[string]string{config.EnvBootstrapEmail: "a@example.com"}, config.EnvBootstrapPassword},
		"rate without window":       {map[string]string{config.EnvLoginRateAddress: "10"}, config.EnvLoginRateAddress},
		"rate of zero":              {map[string]string{config.EnvRefreshRate: "0/1m"}, config.EnvRefreshRate},
		"oidc without client id":    {map[string]string{config.EnvOIDCIssuer: "https://idp.example"}, config.EnvOIDCClientID},
		"oidc issuer not a url": {map[string]string{config.EnvOIDCIssuer: "idp", config.EnvOIDCClientID: "x",
			config.EnvOIDCRedirectURL: "https://b.example/cb"}, config.EnvOIDCIssuer},
		"oidc name with a slash": {map[string]string{config.EnvOIDCName: "a/b", config.EnvOIDCIssuer: "https://idp.example",
			config.EnvOIDCClientID: "x", config.EnvOIDCRedirectURL: "https://b.example/cb"}, config.EnvOIDCName},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(nil, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "a long passphrase") {
				t.Fatal("an error quotes a secret")
			}
		})
	}
}
