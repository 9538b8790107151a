package signin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"
)

// classifyingClient returns a copy of c (or a default client) whose
// transport turns 5xx and 429 answers into transport errors. go-oidc and
// x/oauth2 report a bad status as untyped text, so this is the one place
// that can say "the provider is down" as opposed to "the provider said no".
func classifyingClient(c *http.Client) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	} else {
		cp.Timeout = DefaultHTTPTimeout
	}
	next := cp.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cp.Transport = statusTransport{next: next}
	return &cp
}

type statusTransport struct{ next http.RoundTripper }

// statusError is what statusTransport returns for an overloaded or failing
// provider; http.Client wraps it in a *url.Error.
type statusError struct{ status string }

func (e *statusError) Error() string { return "provider answered " + e.status }

func (t statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		// Drain a little so the connection can be reused, then drop the
		// body: an error page is of no use to the flow.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		return nil, &statusError{status: resp.Status}
	}
	return resp, nil
}

// isUnavailable reports whether err means the provider could not be
// reached or did not answer in time, rather than that it refused.
func isUnavailable(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// unavailableIf wraps err in ErrUnavailable when it is a transport failure.
func unavailableIf(err error) error {
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// keySet wraps go-oidc's remote JWKS so that a failure to fetch keys is
// not lost: IDTokenVerifier.Verify formats key set errors with %v, which
// would make an unreachable JWKS endpoint look like a bad signature.
// Finish puts a slot in the context; the key set records its error there.
type keySet struct{ remote *oidc.RemoteKeySet }

type keySetErrKey struct{}

func newKeySet(ctx context.Context, jwksURL string) keySet {
	return keySet{remote: oidc.NewRemoteKeySet(ctx, jwksURL)}
}

// VerifySignature implements oidc.KeySet.
func (k keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	if err != nil {
		if slot, ok := ctx.Value(keySetErrKey{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

var _ oidc.KeySet = keySet{}
