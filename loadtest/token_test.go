package loadtest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/loadtest"
	"github.com/golang-jwt/jwt/v5"
)

func TestMintToken(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		tok, err := loadtest.MintToken(testSecret, "loadtest-7", "viewer", time.Hour)
		if err != nil {
			t.Fatalf("MintToken: %v", err)
		}
		var c struct {
			Role string `json:"role"`
			jwt.RegisteredClaims
		}
		_, err = jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		if err != nil {
			t.Fatalf("parse minted token: %v", err)
		}
		if c.Subject != "loadtest-7" || c.Role != "viewer" {
			t.Errorf("claims sub=%q role=%q, want loadtest-7 viewer", c.Subject, c.Role)
		}
		if left := time.Until(c.ExpiresAt.Time); left < 59*time.Minute || left > time.Hour+time.Second {
			t.Errorf("token expires in %v, want about 1h", left)
		}
	})
	t.Run("WrongSecretFailsVerification", func(t *testing.T) {
		tok, err := loadtest.MintToken(testSecret, "x", "admin", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(strings.Repeat("z", 40)), nil })
		if err == nil {
			t.Fatal("token verified with another secret")
		}
	})
	refusals := []struct {
		name, secret, sub, role string
		ttl                     time.Duration
		want                    string
	}{
		{"ShortSecret", "short", "a", "viewer", time.Hour, "at least 32"},
		{"EmptySubject", testSecret, "", "viewer", time.Hour, "empty subject"},
		{"UnknownRole", testSecret, "a", "root", time.Hour, "unknown role"},
		{"ZeroTTL", testSecret, "a", "viewer", 0, "not positive"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := loadtest.MintToken(tt.secret, tt.sub, tt.role, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.want) || tok != "" {
				t.Fatalf("MintToken = %q, %v; want an error containing %q", tok, err, tt.want)
			}
		})
	}
}

func TestParseAddrList(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{"Empty", "", nil, ""},
		{"Single", "127.0.0.1", []string{"127.0.0.1"}, ""},
		{"List", "127.0.0.1, 127.0.0.3", []string{"127.0.0.1", "127.0.0.3"}, ""},
		{"Range", "127.0.0.1-127.0.0.4", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}, ""},
		{"RangeAcrossOctet", "10.0.0.254-10.0.1.1", []string{"10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"}, ""},
		{"RangeOfOne", "127.0.0.9-127.0.0.9", []string{"127.0.0.9"}, ""},
		{"Mixed", "127.0.0.1-127.0.0.2,127.0.0.9", []string{"127.0.0.1", "127.0.0.2", "127.0.0.9"}, ""},
		{"IPv6", "::1", []string{"::1"}, ""},
		{"BadAddress", "127.0.0.300", nil, "127.0.0.300"},
		{"Hostname", "localhost", nil, "localhost"},
		{"BadRangeEnd", "127.0.0.1-x", nil, "range"},
		{"Downwards", "127.0.0.5-127.0.0.1", nil, "downwards"},
		{"MixedFamilies", "127.0.0.1-::1", nil, "mixes"},
		{"TooLarge", "10.0.0.0-10.1.0.0", nil, "more than 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadtest.ParseAddrList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseAddrList(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("ParseAddrList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
