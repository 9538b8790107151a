package problem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// MaxRequestIDLen bounds an accepted incoming request id; anything longer is
// more likely abuse of the logs than a correlation id.
const MaxRequestIDLen = 128

// ValidRequestID reports whether an incoming X-Request-ID may be reused. It
// allows the characters of UUIDs, ULIDs and trace ids only, so an id cannot
// forge log lines or smuggle markup into a problem body.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == ':'
		if !ok {
			return false
		}
	}
	return true
}

// NewRequestID returns a fresh random request id (24 hex digits).
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying id, so that handlers behind the edge
// reuse the id the edge chose instead of minting a second one.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the id WithRequestID stored in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
