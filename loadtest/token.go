package loadtest

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HS256 secret bookhub accepts; minting with a
// shorter one would only produce tokens the server refuses.
const MinSecretLen = 32

// MintToken returns an HS256 JWT with the claims bookhub verifies: "sub",
// "role" (viewer, editor or admin), "iat" and "exp" = now + ttl. It lets a
// load test run with only the deployment's secret instead of a stack of
// pre-issued tokens.
func MintToken(secret, sub, role string, ttl time.Duration) (string, error) {
	if len(secret) < MinSecretLen {
		return "", fmt.Errorf("mint token: secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if sub == "" {
		return "", errors.New("mint token: empty subject")
	}
	switch role {
	case "viewer", "editor", "admin":
	default:
		return "", fmt.Errorf("mint token: unknown role %q", role)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint token: ttl %s is not positive", ttl)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":  sub,
		"role": role,
		"iat":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}
