package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// RefreshTokenPrefix starts every refresh token. It lets secret scanners
// recognise a leaked token and lets Verify refuse one presented as an access
// token with a clear reason.
const RefreshTokenPrefix = "bhr_"

const refreshTokenBytes = 32

// refreshTokenLen is the length of prefix + unpadded base64url of 32 bytes
// (ceil(256/6) = 43 characters).
const refreshTokenLen = len(RefreshTokenPrefix) + (refreshTokenBytes*8+5)/6

// NewRefreshToken returns a new opaque refresh token: "bhr_" followed by 256
// random bits in base64url. It is not a JWT on purpose: it carries nothing,
// so it can only be redeemed against the server's session store, where it is
// rotated on use and revocable.
func NewRefreshToken() (string, error) {
	s, err := randomID(refreshTokenBytes)
	if err != nil {
		return "", fmt.Errorf("new refresh token: %w", err)
	}
	return RefreshTokenPrefix + s, nil
}

// HashRefreshToken returns the SHA-256 of tok, the form a refresh token is
// stored and looked up in. A plain fast hash is right here, unlike for
// passwords: the token has 256 bits of entropy, so there is nothing to brute
// force or look up in a dictionary, and a stolen table of hashes is useless
// without the preimages. Being deterministic, it can be a unique index.
func HashRefreshToken(tok string) []byte {
	sum := sha256.Sum256([]byte(tok))
	return sum[:]
}

// LooksLikeRefreshToken reports whether s has the shape of a token from
// NewRefreshToken (prefix, length, alphabet). It says nothing about whether
// the token is valid.
func LooksLikeRefreshToken(s string) bool {
	if len(s) != refreshTokenLen || !strings.HasPrefix(s, RefreshTokenPrefix) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s[len(RefreshTokenPrefix):])
	return err == nil
}

// NewSessionID returns a new random 128-bit session id (a refresh-token
// family id, the "sid" of access tokens) in base64url.
func NewSessionID() (string, error) {
	s, err := randomID(16)
	if err != nil {
		return "", fmt.Errorf("new session id: %w", err)
	}
	return s, nil
}
