package loadtest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest HS256 secret bookhub accepts; minting with a
// shorter one would only produce tokens the server refuses.
const MinSecretLen = 32

// MintToken returns an HS256 access JWT with the claims bookhub verifies:
// "sub", "role" (viewer, editor or admin), "iss" and "aud" (bookhub's
// defaults), "iat", "nbf", "exp" = now + ttl, a random "jti", and the
// "at+jwt" type header. It carries no "kid": bookhub checks such a token
// against its signing key. It lets a
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
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":  sub,
		"role": role,
		"iss":  "bookhub",
		"aud":  "bookhub",
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
		"jti":  base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = "at+jwt"
	tok, err := t.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return tok, nil
}
