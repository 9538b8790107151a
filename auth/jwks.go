package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// jwk is the public part of one key (RFC 7517, RFC 8037 for OKP/Ed25519).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// marshalJWKS encodes the public parts of the asymmetric keys among keys.
// HS256 secrets are symmetric: publishing one would let anybody sign.
func marshalJWKS(keys []Key) ([]byte, error) {
	set := jwkSet{Keys: []jwk{}}
	for _, k := range keys {
		if k.public == nil {
			continue
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.public),
			Kid: k.id,
			Alg: k.Algorithm(),
			Use: "sig",
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal JWKS: %w", err)
	}
	return b, nil
}

// JWKS returns the RFC 7517 JSON Web Key Set of the public keys t verifies
// with, signing key first. HS256 keys never appear, so with only HS256 keys
// it is {"keys":[]}. The result is a copy.
func (t *Tokens) JWKS() []byte { return bytes.Clone(t.jwks) }

// JWKSHandler serves JWKS() to GET and HEAD (anything else gets 405) as
// application/jwk-set+json. It may be cached for five minutes: a new key is
// published as verify-only before it starts signing, so caches see it in
// time.
func (t *Tokens) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Cache-Control", "max-age=300")
		h.Set("Content-Length", strconv.Itoa(len(t.jwks)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(t.jwks)
	})
}
