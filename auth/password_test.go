package auth_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
)

// cheap parameters keep the tests fast; TestPasswordDefaults covers the
// real ones.
var cheap = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}

func newPasswords(t testing.TB, params auth.Argon2Params) *auth.Passwords {
	t.Helper()
	p, err := auth.NewPasswords(auth.PasswordOptions{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPasswordDefaults(t *testing.T) {
	ctx := testContext(t)
	p := newPasswords(t, auth.Argon2Params{})
	if got := p.Params(); got != auth.DefaultArgon2Params() {
		t.Fatalf("Params = %+v", got)
	}
	h, err := p.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(h) {
		t.Fatalf("hash %q is not the PHC string of OWASP's parameters", h)
	}
	if ok, err := p.Verify(ctx, h, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if p.NeedsRehash(h) {
		t.Fatal("NeedsRehash of a current hash")
	}
}

func TestPasswordHashVerify(t *testing.T) {
	ctx := testContext(t)
	p := newPasswords(t, cheap)
	h1, err := p.Hash(ctx, "s3cret-passphrase")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := p.Hash(ctx, "s3cret-passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for name, tc := range map[string]struct {
		pw   string
		want bool
	}{
		"Right":       {"s3cret-passphrase", true},
		"Wrong":       {"s3cret-passphrasE", false},
		"Prefix":      {"s3cret-passphras", false},
		"Empty":       {"", false},
		"TooLong":     {strings.Repeat("a", auth.MaxPasswordBytes+1), false},
		"Unicode":     {"s3cret-pässphrase", false},
		"TrailingNUL": {"s3cret-passphrase\x00", false},
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := p.Verify(ctx, h1, tc.pw)
			if err != nil || ok != tc.want {
				t.Fatalf("Verify = %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
}

func TestPasswordOldParamsStillVerify(t *testing.T) {
	ctx := testContext(t)
	old := newPasswords(t, cheap)
	h, err := old.Hash(ctx, "an old password")
	if err != nil {
		t.Fatal(err)
	}
	current := newPasswords(t, auth.Argon2Params{Memory: 128, Time: 2, Threads: 2, SaltLen: 24, KeyLen: 48})
	if ok, err := current.Verify(ctx, h, "an old password"); !ok || err != nil {
		t.Fatalf("Verify of an old-parameter hash = %v, %v", ok, err)
	}
	if !current.NeedsRehash(h) {
		t.Fatal("NeedsRehash = false for a hash with old parameters")
	}
	h2, err := current.Hash(ctx, "an old password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h2, "$argon2id$v=19$m=128,t=2,p=2$") {
		t.Fatalf("hash with new parameters = %q", h2)
	}
}

func TestPasswordVerifyRefusesMalformedHash(t *testing.T) {
	ctx := testContext(t)
	p := newPasswords(t, cheap)
	good, err := p.Hash(ctx, "whatever pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, hash
	salt, key := parts[4], parts[5]
	with := func(alg, ver, params, s, k string) string {
		return strings.Join([]string{"", alg, ver, params, s, k}, "$")
	}
	cases := map[string]string{
		"Empty":           "",
		"Bcrypt":          "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"Argon2i":         with("argon2i", "v=19", "m=64,t=1,p=1", salt, key),
		"Argon2d":         with("argon2d", "v=19", "m=64,t=1,p=1", salt, key),
		"Version16":       with("argon2id", "v=16", "m=64,t=1,p=1", salt, key),
		"NoVersion":       "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"ParamsReordered": with("argon2id", "v=19", "t=1,m=64,p=1", salt, key),
		"ParamsMissing":   with("argon2id", "v=19", "m=64,t=1", salt, key),
		"ParamNotNumber":  with("argon2id", "v=19", "m=lots,t=1,p=1", salt, key),
		"ParamNegative":   with("argon2id", "v=19", "m=-64,t=1,p=1", salt, key),
		"MemoryOver1GiB":  with("argon2id", "v=19", "m=1048577,t=1,p=1", salt, key),
		"MemoryOverflow":  with("argon2id", "v=19", "m=4294967296,t=1,p=1", salt, key),
		"MemoryTooSmall":  with("argon2id", "v=19", "m=7,t=1,p=1", salt, key),
		"TimeZero":        with("argon2id", "v=19", "m=64,t=0,p=1", salt, key),
		"TimeAbsurd":      with("argon2id", "v=19", "m=64,t=100000,p=1", salt, key),
		"ThreadsZero":     with("argon2id", "v=19", "m=64,t=1,p=0", salt, key),
		"ThreadsAbsurd":   with("argon2id", "v=19", "m=65536,t=1,p=256", salt, key),
		"SaltShort":       with("argon2id", "v=19", "m=64,t=1,p=1", "AAAA", key),
		"SaltBadBase64":   with("argon2id", "v=19", "m=64,t=1,p=1", "!!!!!!!!!!!!!!!!!!!!!!", key),
		"SaltPadded":      with("argon2id", "v=19", "m=64,t=1,p=1", salt+"==", key),
		"HashShort":       with("argon2id", "v=19", "m=64,t=1,p=1", salt, "AAAA"),
		"HashEmpty":       with("argon2id", "v=19", "m=64,t=1,p=1", salt, ""),
		"TrailingField":   good + "$x",
		"NoLeadingDollar": strings.TrimPrefix(good, "$"),
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := p.Verify(ctx, h, "whatever pw")
			if ok || !errors.Is(err, auth.ErrMalformedHash) {
				t.Fatalf("Verify(%q) = %v, %v; want ErrMalformedHash", h, ok, err)
			}
			if !p.NeedsRehash(h) {
				t.Fatal("NeedsRehash = false for a malformed hash")
			}
		})
	}
}

func TestPasswordHonoursContext(t *testing.T) {
	p := newPasswords(t, cheap)
	h, err := p.Hash(testContext(t), "some password")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Hash(ctx, "some password"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with a cancelled context: %v", err)
	}
	if ok, err := p.Verify(ctx, h, "some password"); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a cancelled context = %v, %v", ok, err)
	}
	p.VerifyDummy(ctx, "some password") // must return, not block or panic
}

func TestPasswordHashRefusesTooLong(t *testing.T) {
	p := newPasswords(t, cheap)
	if _, err := p.Hash(testContext(t), strings.Repeat("a", auth.MaxPasswordBytes+1)); err == nil {
		t.Fatal("Hash accepted an over-long password")
	}
}

func TestVerifyDummy(t *testing.T) {
	p := newPasswords(t, cheap)
	ctx := testContext(t)
	p.VerifyDummy(ctx, "anything at all")
	p.VerifyDummy(ctx, strings.Repeat("a", auth.MaxPasswordBytes+1))
}

func TestNewPasswordsRefuses(t *testing.T) {
	cases := map[string]auth.PasswordOptions{
		"MemoryOver1GiB":        {Params: auth.Argon2Params{Memory: 1<<20 + 1}},
		"MemoryBelow8xThreads":  {Params: auth.Argon2Params{Memory: 8, Threads: 2}},
		"TimeAbsurd":            {Params: auth.Argon2Params{Time: 1000}},
		"ThreadsAbsurd":         {Params: auth.Argon2Params{Threads: 200, Memory: 1 << 16}},
		"SaltTooShort":          {Params: auth.Argon2Params{SaltLen: 4}},
		"KeyTooShort":           {Params: auth.Argon2Params{KeyLen: 8}},
		"KeyTooLong":            {Params: auth.Argon2Params{KeyLen: 1024}},
		"NegativeMaxConcurrent": {MaxConcurrent: -1},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.NewPasswords(opts); err == nil {
				t.Fatal("NewPasswords succeeded")
			}
		})
	}
}
