package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/bookhub/bookhub/auth"
)

func TestKeyConstructorsRefuse(t *testing.T) {
	priv, err := auth.GenerateEdDSAKey()
	if err != nil {
		t.Fatal(err)
	}
	mismatched := append(ed25519.PrivateKey(nil), priv...)
	mismatched[len(mismatched)-1] ^= 1 // corrupt the public half
	cases := map[string]func() error{
		"HS256ShortSecret":   func() error { _, err := auth.HS256Key("k", make([]byte, auth.MinSecretLen-1)); return err },
		"HS256EmptyID":       func() error { _, err := auth.HS256Key("", secret); return err },
		"HS256LongID":        func() error { _, err := auth.HS256Key(strings.Repeat("k", 65), secret); return err },
		"HS256IDWithSpace":   func() error { _, err := auth.HS256Key("my key", secret); return err },
		"HS256IDNonASCII":    func() error { _, err := auth.HS256Key("clé", secret); return err },
		"EdDSAEmptyID":       func() error { _, err := auth.EdDSAKey("", priv); return err },
		"EdDSAShortKey":      func() error { _, err := auth.EdDSAKey("k", priv[:32]); return err },
		"EdDSANilKey":        func() error { _, err := auth.EdDSAKey("k", nil); return err },
		"EdDSAMismatchedPub": func() error { _, err := auth.EdDSAKey("k", mismatched); return err },
		"EdDSAPublicShort":   func() error { _, err := auth.EdDSAPublicKey("k", make([]byte, 31)); return err },
		"EdDSAPublicEmptyID": func() error {
			_, err := auth.EdDSAPublicKey("", priv.Public().(ed25519.PublicKey))
			return err
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if f() == nil {
				t.Fatal("constructor succeeded")
			}
		})
	}
}

func TestKeyAccessors(t *testing.T) {
	hs := hsKey(t, "h", secret)
	ed, _ := edKey(t, "e")
	if hs.ID() != "h" || hs.Algorithm() != "HS256" || ed.ID() != "e" || ed.Algorithm() != "EdDSA" {
		t.Fatalf("hs = %s/%s, ed = %s/%s", hs.ID(), hs.Algorithm(), ed.ID(), ed.Algorithm())
	}
	if (auth.Key{}).Algorithm() != "" {
		t.Fatal("zero Key has an algorithm")
	}
}

func TestHS256KeyCopiesSecret(t *testing.T) {
	s := []byte(string(secret))
	k := hsKey(t, "k", s)
	tk := newWithKeys(t, k, nil, testNow)
	tok := mustIssue(t, tk)
	s[0] ^= 0xff // the caller reusing its buffer must not change the key
	if _, err := tk.Verify(tok); err != nil {
		t.Fatalf("Verify after the caller changed its secret buffer: %v", err)
	}
}

func TestDerivedKid(t *testing.T) {
	a := newTokens(t, testNow)
	b := newTokens(t, testNow)
	other, err := auth.New([]byte(strings.Repeat("x", 40)), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kid := a.SigningKeyID()
	if kid != b.SigningKeyID() {
		t.Fatalf("same secret, different kids %q and %q", kid, b.SigningKeyID())
	}
	if kid == other.SigningKeyID() {
		t.Fatal("different secrets share a kid")
	}
	if raw, err := hex.DecodeString(kid); err != nil || len(raw) != 8 {
		t.Fatalf("kid %q is not 8 bytes of hex", kid)
	}
	if strings.Contains(string(secret), kid) || strings.Contains(hex.EncodeToString(secret), kid) {
		t.Fatal("kid reveals the secret")
	}
}

func TestEdDSAPEMRoundTrip(t *testing.T) {
	priv, err := auth.GenerateEdDSAKey()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := auth.MarshalEdDSAPrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := auth.ParseEdDSAPrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(priv) {
		t.Fatal("round trip changed the key")
	}
	// What `openssl genpkey -algorithm ed25519` writes (RFC 8410 test key).
	const opensslPEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
`
	if _, err := auth.ParseEdDSAPrivateKeyPEM([]byte(opensslPEM)); err != nil {
		t.Fatalf("openssl PEM: %v", err)
	}
}

func TestParseEdDSAPrivateKeyPEMRefuses(t *testing.T) {
	priv, err := auth.GenerateEdDSAKey()
	if err != nil {
		t.Fatal(err)
	}
	good, err := auth.MarshalEdDSAPrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(good)
	cases := map[string][]byte{
		"Empty":         nil,
		"NotPEM":        []byte("hello"),
		"WrongType":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: block.Bytes}),
		"WithHeaders":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: block.Bytes}),
		"ECDSA":         pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"GarbageDER":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}),
		"TrailingBlock": append(append([]byte(nil), good...), good...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.ParseEdDSAPrivateKeyPEM(data); err == nil {
				t.Fatal("ParseEdDSAPrivateKeyPEM succeeded")
			}
		})
	}
}

func TestDeriveKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := auth.DeriveKey(secret, "purpose a")
	if err != nil || len(a) != 32 {
		t.Fatalf("DeriveKey: %x %v", a, err)
	}
	b, _ := auth.DeriveKey(secret, "purpose b")
	if string(a) == string(b) || string(a) == string(secret) {
		t.Fatal("keys for two purposes, or key and secret, are equal")
	}
	if _, err := auth.DeriveKey(secret[:31], "short"); err == nil {
		t.Fatal("DeriveKey accepted a short secret")
	}
}
