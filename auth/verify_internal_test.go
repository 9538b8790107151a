package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// This file holds Verify against the generic parser it replaced: the
// reference below is Verify as it was written on jwt.Parser, and no token
// may pass Verify that the reference refuses, or pass with another identity.

var (
	refNow    = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	refSecret = []byte("0123456789abcdef0123456789abcdef")
)

func refTokens(t testing.TB) *Tokens {
	t.Helper()
	tk, err := New(refSecret, Options{Now: func() time.Time { return refNow }})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// referenceVerify is the jwt.Parser implementation of Verify.
func referenceVerify(t *Tokens, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrMissingToken
	}
	if strings.HasPrefix(token, RefreshTokenPrefix) || len(token) > maxTokenLen {
		return Identity{}, ErrInvalidToken
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(t.algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.audience),
		jwt.WithLeeway(t.leeway),
		jwt.WithTimeFunc(t.now),
	)
	keyFor := func(tok *jwt.Token) (any, error) {
		typ, _ := tok.Header["typ"].(string)
		if typ = strings.ToLower(typ); typ != AccessTokenType && typ != "application/"+AccessTokenType {
			return nil, fmt.Errorf("typ %q", typ)
		}
		v := t.verifiers[t.signing.id]
		if raw, ok := tok.Header["kid"]; ok {
			kid, isString := raw.(string)
			if !isString {
				return nil, errors.New("kid is not a string")
			}
			if v = t.verifiers[kid]; v == nil {
				return nil, fmt.Errorf("unknown kid %q", kid)
			}
		}
		if tok.Method.Alg() != v.Algorithm() {
			return nil, errors.New("alg does not match the key")
		}
		return v.verify, nil
	}
	var c accessClaims
	if _, err := parser.ParseWithClaims(token, &c, keyFor); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || !c.Role.Valid() || c.IssuedAt == nil || c.ID == "" {
		return Identity{}, ErrInvalidToken
	}
	return identityOf(&c), nil
}

func sameIdentity(a, b Identity) bool {
	return a.Subject == b.Subject && a.Role == b.Role && a.TokenID == b.TokenID && a.Session == b.Session &&
		a.Generation == b.Generation && a.ExpiresAt.Equal(b.ExpiresAt) && a.IssuedAt.Equal(b.IssuedAt)
}

// compact builds a token from raw header and claims JSON, signed with
// refSecret.
func compact(header, claims string) string {
	in := b64(header) + "." + b64(claims)
	mac := hmac.New(sha256.New, refSecret)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// refClaims are valid claims with "%s" where a test puts more members.
func refClaims(extra string) string {
	return fmt.Sprintf(`{"sub":"a","role":"editor","iss":"bookhub","aud":["bookhub"],"exp":%d,"iat":%d,"nbf":%d,"jti":"j1"%s}`,
		refNow.Add(time.Hour).Unix(), refNow.Unix(), refNow.Unix(), extra)
}

func refHeader(tk *Tokens) string {
	return `{"alg":"HS256","typ":"at+jwt","kid":"` + tk.SigningKeyID() + `"}`
}

// TestVerifyAgainstParser lists where Verify and the parser it replaced
// agree, and where Verify is the stricter one (never the other way round).
func TestVerifyAgainstParser(t *testing.T) {
	tk := refTokens(t)
	hdr := refHeader(tk)
	good := compact(hdr, refClaims(""))
	parts := strings.Split(good, ".")
	// Base64 of 32 bytes leaves 2 unused bits in the last character; the
	// parser ignores them, so the signature had four spellings.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := []byte(parts[2])
	sig[len(sig)-1] = alphabet[strings.IndexByte(alphabet, sig[len(sig)-1])^1]
	cases := []struct {
		name           string
		token          string
		verify, parser bool // accepted by each
	}{
		{"OK", good, true, true},
		{"OKFractionalTimes", compact(hdr, fmt.Sprintf(`{"sub":"a","role":"viewer","iss":"bookhub","aud":"bookhub","exp":%d.75,"iat":%d.5,"jti":"j"}`,
			refNow.Add(time.Hour).Unix(), refNow.Add(-time.Minute).Unix())), true, true},
		{"OKEscapedName", compact(hdr, refClaims(`,"\u0073id":"s1"`)), true, true},
		{"OKEscapedValue", compact(hdr, strings.Replace(refClaims(""), `"sub":"a"`, `"sub":"caf\u00e9 \ud83d\ude00"`, 1)), true, true},
		{"OKInvalidUTF8Value", compact(hdr, strings.Replace(refClaims(""), `"sub":"a"`, "\"sub\":\"a\xffb\"", 1)), true, true},
		{"OKNulls", compact(hdr, refClaims(`,"sid":null,"gen":null,"nbf2":null`)), true, true},
		{"OKAudienceWithEmpty", compact(hdr, strings.Replace(refClaims(""), `["bookhub"]`, `["","bookhub"]`, 1)), true, true},
		{"OKUnknownNested", compact(hdr, refClaims(`,"x":{"a":[1,{"b":"]}"}],"c":"\"}"}`)), true, true},
		{"OKHeaderExtra", compact(`{"alg":"HS256","typ":"at+jwt","x5u":["a"],"kid":"`+tk.SigningKeyID()+`"}`, refClaims("")), true, true},
		{"OKNoKid", compact(`{"typ":"AT+JWT","alg":"HS256"}`, refClaims("")), true, true},
		{"ErrAudienceOnlyEmpty", compact(hdr, strings.Replace(refClaims(""), `["bookhub"]`, `""`, 1)), false, false},
		{"ErrAudienceEmptyArray", compact(hdr, strings.Replace(refClaims(""), `["bookhub"]`, `[]`, 1)), false, false},
		{"ErrAudienceNumber", compact(hdr, strings.Replace(refClaims(""), `["bookhub"]`, `[7]`, 1)), false, false},
		{"ErrGenNegative", compact(hdr, refClaims(`,"gen":-1`)), false, false},
		{"ErrGenFraction", compact(hdr, refClaims(`,"gen":1.5`)), false, false},
		{"ErrSidNumber", compact(hdr, refClaims(`,"sid":7`)), false, false},
		{"ErrClaimsArray", compact(hdr, `[]`), false, false},
		{"ErrTrailingGarbage", compact(hdr, refClaims("")+"x"), false, false},
		{"ErrHeaderNull", compact(`null`, refClaims("")), false, false},
		{"ErrKidNull", compact(`{"alg":"HS256","typ":"at+jwt","kid":null}`, refClaims("")), false, false},
		// Verify is stricter here; a signed token of bookhub's never looks
		// like this.
		{"StricterDuplicateClaim", compact(hdr, refClaims(`,"sub":"b"`)), false, true},
		{"StricterDuplicateHeader", compact(`{"alg":"HS256","typ":"at+jwt","typ":"at+jwt"}`, refClaims("")), false, true},
		{"StricterCaseFoldedName", compact(hdr, refClaims(`,"SID":"s"`)), false, true},
		{"StricterQuotedTime", compact(hdr, strings.Replace(refClaims(""), fmt.Sprintf(`"nbf":%d`, refNow.Unix()), fmt.Sprintf(`"nbf":"%d"`, refNow.Unix()), 1)), false, true},
		{"StricterNonCanonicalBase64", parts[0] + "." + parts[1] + "." + string(sig), false, true},
		{"StricterNewlineInSignature", parts[0] + "." + parts[1] + "." + parts[2][:9] + "\r\n" + parts[2][9:], false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tk.Verify(tc.token)
			want, refErr := referenceVerify(tk, tc.token)
			if (err == nil) != tc.verify {
				t.Errorf("Verify: err = %v, want accepted = %v", err, tc.verify)
			}
			if (refErr == nil) != tc.parser {
				t.Errorf("parser: err = %v, want accepted = %v", refErr, tc.parser)
			}
			if err == nil && refErr == nil && !sameIdentity(got, want) {
				t.Errorf("Verify = %+v, parser = %+v", got, want)
			}
			if err != nil && !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify error %v does not wrap ErrInvalidToken", err)
			}
		})
	}
}

// FuzzVerify: whatever the header and claims, signed or not, Verify never
// panics, refuses with ErrInvalidToken, and accepts only what the parser
// accepts, with the same identity.
func FuzzVerify(f *testing.F) {
	tk := refTokens(f)
	f.Add(refHeader(tk), refClaims(""), uint8(0))
	f.Add(refHeader(tk), refClaims(`,"sid":"s","gen":3`), uint8(0))
	f.Add(`{"alg":"HS256","typ":"at+jwt"}`, refClaims(`,"x":[{"y":null}]`), uint8(0))
	f.Add(`{"alg":"none"}`, refClaims(""), uint8(1))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.", "", uint8(2))
	f.Fuzz(func(t *testing.T, header, claims string, mode uint8) {
		var token string
		switch mode % 3 {
		case 0: // signed with the key: the claims decoder is reached
			token = compact(header, claims)
		case 1: // signed with another key
			token = b64(header) + "." + b64(claims) + "." + b64(strings.Repeat("x", 32))
		default: // any string at all
			token = header + claims
		}
		got, err := tk.Verify(token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrMissingToken) {
				t.Fatalf("Verify error %v wraps neither ErrInvalidToken nor ErrMissingToken", err)
			}
			return
		}
		want, refErr := referenceVerify(tk, token)
		if refErr != nil {
			t.Fatalf("Verify accepted %q (identity %+v), the parser refuses it: %v", token, got, refErr)
		}
		if !sameIdentity(got, want) {
			t.Fatalf("Verify = %+v, parser = %+v", got, want)
		}
	})
}

// TestVerifyAllocations keeps verification cheap: the identity's one
// string is the only allocation of a successful Verify.
func TestVerifyAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop entries at random")
	}
	tk := refTokens(t)
	tok, _, err := tk.IssueAccess(Claims{Subject: "alice", Role: RoleEditor, Session: "fam", Generation: 3}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var sink Identity
	allocs := testing.AllocsPerRun(1000, func() {
		if sink, err = tk.Verify(tok); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 || sink.Subject != "alice" {
		t.Errorf("Verify allocates %v times per token (identity %+v), want at most 1", allocs, sink)
	}
}
