package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the shortest secret accepted for HS256 (256 bits).
const MinSecretLen = 32

// maxKeyIDLen bounds a kid: it travels in every token header.
const maxKeyIDLen = 64

// Key is one signing or verification key with its key id ("kid"). Build it
// with [HS256Key], [EdDSAKey] or [EdDSAPublicKey]; the zero Key is not usable.
// A Key is immutable and safe to share.
type Key struct {
	id     string
	method jwt.SigningMethod
	// sign is what method.Sign takes ([]byte or ed25519.PrivateKey); nil for
	// a verify-only key.
	sign any
	// verify is what method.Verify takes ([]byte or ed25519.PublicKey).
	verify any
	// public is the Ed25519 public key published in the JWKS; nil for HS256.
	public ed25519.PublicKey
}

// ID returns the key id that tokens signed with k carry as "kid".
func (k Key) ID() string { return k.id }

// Algorithm returns the JWS "alg" of k: "HS256" or "EdDSA".
func (k Key) Algorithm() string {
	if k.method == nil {
		return ""
	}
	return k.method.Alg()
}

// HS256Key returns a shared-secret key. secret must be at least MinSecretLen
// bytes; it is copied.
func HS256Key(id string, secret []byte) (Key, error) {
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	if len(secret) < MinSecretLen {
		return Key{}, fmt.Errorf("key %q: HS256 secret is %d bytes, want at least %d", id, len(secret), MinSecretLen)
	}
	s := bytes.Clone(secret)
	return Key{id: id, method: jwt.SigningMethodHS256, sign: s, verify: s}, nil
}

// EdDSAKey returns an Ed25519 signing key. Its public half appears in the
// JWKS.
func EdDSAKey(id string, priv ed25519.PrivateKey) (Key, error) {
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return Key{}, fmt.Errorf("key %q: Ed25519 private key is %d bytes, want %d", id, len(priv), ed25519.PrivateKeySize)
	}
	// An ed25519.PrivateKey is seed || public key; a corrupted second half
	// would publish a public key that verifies nothing we sign.
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	if !bytes.Equal(derived, priv) {
		return Key{}, fmt.Errorf("key %q: Ed25519 private key does not match its public half", id)
	}
	pub := derived.Public().(ed25519.PublicKey)
	return Key{id: id, method: jwt.SigningMethodEdDSA, sign: derived, verify: pub, public: pub}, nil
}

// EdDSAPublicKey returns a verify-only Ed25519 key, e.g. another instance's
// previous key during a rotation. It cannot be the signing key of
// [NewWithKeys].
func EdDSAPublicKey(id string, pub ed25519.PublicKey) (Key, error) {
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	if len(pub) != ed25519.PublicKeySize {
		return Key{}, fmt.Errorf("key %q: Ed25519 public key is %d bytes, want %d", id, len(pub), ed25519.PublicKeySize)
	}
	p := ed25519.PublicKey(bytes.Clone(pub))
	return Key{id: id, method: jwt.SigningMethodEdDSA, verify: p, public: p}, nil
}

// checkKeyID refuses empty, overlong and non-printable kids: a kid is echoed
// in every token and in the JWKS.
func checkKeyID(id string) error {
	if id == "" {
		return errors.New("key id is empty")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id is %d bytes, want at most %d", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("key id %q: only printable ASCII without spaces is allowed", id)
		}
	}
	return nil
}

// KeyID derives a key id ("kid") from key material (an HS256 secret, an
// Ed25519 public key) without revealing it, so every instance configured
// with the same key names it alike and a rotated-out key keeps its id. It
// is a domain-separated hash truncated to 64 bits.
func KeyID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("bookhub-kid"))
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// GenerateEdDSAKey returns a fresh Ed25519 private key, for tests and for a
// key-generation command.
func GenerateEdDSAKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate Ed25519 key: %w", err)
	}
	return priv, nil
}

// ParseEdDSAPrivateKeyPEM parses a PKCS#8 "PRIVATE KEY" PEM block holding an
// Ed25519 key (what `openssl genpkey -algorithm ed25519` writes). Encrypted
// PEM, other key types and trailing garbage are refused.
func ParseEdDSAPrivateKeyPEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse Ed25519 key: no PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("parse Ed25519 key: unexpected data after the PEM block")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("parse Ed25519 key: PEM block is %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("parse Ed25519 key: PEM headers (encrypted key?) are not supported")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse Ed25519 key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse Ed25519 key: PKCS#8 key is %T, want Ed25519", k)
	}
	return priv, nil
}

// MarshalEdDSAPrivateKeyPEM encodes priv as a PKCS#8 "PRIVATE KEY" PEM block,
// the format [ParseEdDSAPrivateKeyPEM] reads.
func MarshalEdDSAPrivateKeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal Ed25519 key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DeriveKey derives a 32-byte key for one purpose from the shared secret
// (HKDF-SHA256, the purpose as info), so that no two uses of the secret
// share a key and none uses the JWT key itself.
func DeriveKey(secret []byte, purpose string) ([]byte, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("derive %s key: secret is %d bytes, want at least %d", purpose, len(secret), MinSecretLen)
	}
	return hkdf.Key(sha256.New, secret, nil, purpose, sha256.Size)
}
