package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id cost parameters.
type Argon2Params struct {
	// Memory in KiB. Zero means 19456 (19 MiB).
	Memory uint32
	// Time is the number of passes. Zero means 2.
	Time uint32
	// Threads is the parallelism. Zero means 1.
	Threads uint8
	// SaltLen in bytes. Zero means 16.
	SaltLen uint32
	// KeyLen in bytes. Zero means 32.
	KeyLen uint32
}

// DefaultArgon2Params are OWASP's 2023 minimum for argon2id: m=19 MiB, t=2,
// p=1, with a 16-byte salt and a 32-byte key.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds on parameters, both configured and read from stored hashes. A
// corrupted or planted hash with m = 4 GiB would otherwise take the process
// down at the next login.
const (
	maxArgon2Memory  = 1 << 20 // KiB, i.e. 1 GiB
	maxArgon2Time    = 64
	maxArgon2Threads = 64
	minSaltLen       = 8
	maxSaltLen       = 64
	minKeyLen        = 16
	maxKeyLen        = 64
)

func (p Argon2Params) withDefaults() Argon2Params {
	d := DefaultArgon2Params()
	if p.Memory == 0 {
		p.Memory = d.Memory
	}
	if p.Time == 0 {
		p.Time = d.Time
	}
	if p.Threads == 0 {
		p.Threads = d.Threads
	}
	if p.SaltLen == 0 {
		p.SaltLen = d.SaltLen
	}
	if p.KeyLen == 0 {
		p.KeyLen = d.KeyLen
	}
	return p
}

// validate checks p against argon2's own rule (m >= 8p) and our bounds.
func (p Argon2Params) validate() error {
	switch {
	case p.Threads < 1 || p.Threads > maxArgon2Threads:
		return fmt.Errorf("argon2 parallelism %d out of range 1..%d", p.Threads, maxArgon2Threads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2 memory %d KiB out of range %d..%d", p.Memory, 8*uint32(p.Threads), maxArgon2Memory)
	case p.Time < 1 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2 time %d out of range 1..%d", p.Time, maxArgon2Time)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2 salt length %d out of range %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2 key length %d out of range %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// PasswordOptions configure Passwords. The zero value is fine.
type PasswordOptions struct {
	// Params for new hashes; zero fields take DefaultArgon2Params. Weaker
	// values are accepted (tests use them to run fast) but production
	// should keep the defaults or raise them. Existing hashes keep
	// verifying with the parameters they were made with.
	Params Argon2Params
	// MaxConcurrent bounds the hashes computed at once: each takes Memory
	// KiB, so a login flood queues instead of exhausting memory. Zero means
	// 2*GOMAXPROCS.
	MaxConcurrent int
}

// ErrMalformedHash is wrapped by Verify's error for a stored hash it cannot
// parse or whose parameters are out of bounds.
var ErrMalformedHash = errors.New("malformed password hash")

// Passwords hashes and verifies passwords with argon2id. It is safe for
// concurrent use; at most MaxConcurrent hashes run at once.
type Passwords struct {
	params Argon2Params
	sem    chan struct{}
	// dummySalt and dummyKey make VerifyDummy's work identical to a real
	// Verify with the current parameters.
	dummySalt []byte
	dummyKey  []byte
}

// NewPasswords returns Passwords hashing with opts.Params.
func NewPasswords(opts PasswordOptions) (*Passwords, error) {
	p := opts.Params.withDefaults()
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("new passwords: %w", err)
	}
	if opts.MaxConcurrent < 0 {
		return nil, fmt.Errorf("new passwords: MaxConcurrent %d is negative", opts.MaxConcurrent)
	}
	if opts.MaxConcurrent == 0 {
		opts.MaxConcurrent = 2 * runtime.GOMAXPROCS(0)
	}
	salt := make([]byte, p.SaltLen)
	key := make([]byte, p.KeyLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("new passwords: %w", err)
	}
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new passwords: %w", err)
	}
	return &Passwords{params: p, sem: make(chan struct{}, opts.MaxConcurrent), dummySalt: salt, dummyKey: key}, nil
}

// Params returns the parameters new hashes are made with, so a caller can
// tell (with NeedsRehash) which stored hashes to upgrade at the next login.
func (p *Passwords) Params() Argon2Params { return p.params }

// Hash returns the PHC string of pw:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> (unpadded standard base64).
// It refuses passwords longer than MaxPasswordBytes; it does not apply the
// rest of the policy (see CheckPassword). It waits for a free slot or ctx.
func (p *Passwords) Hash(ctx context.Context, pw string) (string, error) {
	if len(pw) > MaxPasswordBytes {
		return "", fmt.Errorf("hash password: %d bytes, want at most %d", len(pw), MaxPasswordBytes)
	}
	salt := make([]byte, p.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key, err := p.derive(ctx, pw, salt, p.params)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return encodePHC(p.params, salt, key), nil
}

// Verify reports whether pw matches the PHC string encoded, using the
// parameters stored in it. A mismatch is (false, nil); an unparsable hash or
// one with out-of-bounds parameters wraps ErrMalformedHash; a done ctx
// returns its error. A pw longer than MaxPasswordBytes is (false, nil)
// without hashing: Hash never stored one.
func (p *Passwords) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	params, salt, want, err := decodePHC(encoded)
	if err != nil {
		return false, fmt.Errorf("verify password: %w: %w", ErrMalformedHash, err)
	}
	if len(pw) > MaxPasswordBytes {
		return false, nil
	}
	got, err := p.derive(ctx, pw, salt, params)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy does the work of a Verify with the current parameters against
// a fixed random hash and throws the answer away. Call it when the email of
// a login is unknown, so the response takes as long as for a known email and
// does not tell which emails have accounts. (A stored hash made with older
// parameters costs differently; rehash on login to converge.)
func (p *Passwords) VerifyDummy(ctx context.Context, pw string) {
	if len(pw) > MaxPasswordBytes {
		return
	}
	got, err := p.derive(ctx, pw, p.dummySalt, p.params)
	if err == nil {
		subtle.ConstantTimeCompare(got, p.dummyKey)
	}
}

// NeedsRehash reports whether encoded was made with parameters other than
// the current ones (or cannot be parsed), so the caller can replace it after
// a successful login.
func (p *Passwords) NeedsRehash(encoded string) bool {
	params, _, _, err := decodePHC(encoded)
	return err != nil || params != p.params
}

// derive computes the argon2id key, holding a semaphore slot meanwhile.
func (p *Passwords) derive(ctx context.Context, pw string, salt []byte, params Argon2Params) ([]byte, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a hashing slot: %w", context.Cause(ctx))
	}
	defer func() { <-p.sem }()
	// The slot may have been won in a race with cancellation.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wait for a hashing slot: %w", context.Cause(ctx))
	}
	return argon2.IDKey([]byte(pw), salt, params.Time, params.Memory, params.Threads, params.KeyLen), nil
}

func encodePHC(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// decodePHC parses the strings encodePHC writes, strictly: fixed field
// order, version 19 only, canonical base64, bounded parameters.
func decodePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, nil, nil, errors.New("want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("algorithm %q, want argon2id", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("version %q, want v=%d", parts[2], argon2.Version)
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, fmt.Errorf("parameters %q, want m=<KiB>,t=<passes>,p=<lanes>", parts[3])
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return p, nil, nil, fmt.Errorf("parameter %d is %q, want %s=", i+1, fields[i], name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, fmt.Errorf("parameter %s: %w", name, err)
		}
		vals[i] = n
	}
	if vals[2] > maxArgon2Threads {
		return p, nil, nil, fmt.Errorf("argon2 parallelism %d out of range 1..%d", vals[2], maxArgon2Threads)
	}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, fmt.Errorf("salt: %w", err)
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil {
		return p, nil, nil, fmt.Errorf("hash: %w", err)
	}
	p = Argon2Params{Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2]),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.validate(); err != nil {
		return p, nil, nil, err
	}
	return p, salt, key, nil
}
