package redisbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// backend is the client the bus talks through: a *redis.Client for one
// server or a *redis.ClusterClient for a Redis Cluster. Publish, Subscribe
// and the receive loop only use redis.UniversalClient, so both kinds share
// one code path; the few cluster-only steps go through topology.
type backend struct {
	redis.UniversalClient
	// topo is nil for a single server.
	topo topology
	// addr names the server, or the seed nodes of a cluster, in logs and
	// errors. It never holds credentials.
	addr string
	// dialTimeout bounds one connection attempt; New's first ping too.
	dialTimeout time.Duration
	// confirmTimeout bounds the wait for a subscription's confirmation:
	// one dial plus one read.
	confirmTimeout time.Duration
}

// topology is what a cluster adds to a plain client. *redis.ClusterClient
// implements it.
type topology interface {
	// MasterForKey returns the node that currently owns key's hash slot.
	MasterForKey(ctx context.Context, key string) (*redis.Client, error)
	// ReloadState refreshes the slot map in the background.
	ReloadState(ctx context.Context)
}

var _ topology = (*redis.ClusterClient)(nil)

// newBackend parses raw and builds the client; it does not touch the
// network. dialTimeout overrides a dial_timeout from the URL when positive.
func newBackend(raw string, cluster bool, dialTimeout time.Duration) (*backend, error) {
	if cluster {
		copts, err := parseClusterURL(raw)
		if err != nil {
			return nil, err
		}
		copts.DialTimeout = pickDialTimeout(dialTimeout, copts.DialTimeout)
		// At most once: node clients never retry, and publishes opt out of
		// the cluster client's own retry of network errors (see noRetry).
		copts.MaxRetries = -1
		// Socket deadlines follow the caller's context (see newBackend's
		// single-server branch).
		copts.ContextTimeoutEnabled = true
		c := redis.NewClusterClient(copts)
		o := c.Options() // defaults filled in
		return &backend{
			UniversalClient: c,
			topo:            c,
			addr:            strings.Join(o.Addrs, ","),
			dialTimeout:     o.DialTimeout,
			confirmTimeout:  o.DialTimeout + o.ReadTimeout,
		}, nil
	}
	ropts, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	ropts.DialTimeout = pickDialTimeout(dialTimeout, ropts.DialTimeout)
	// At most once: a PUBLISH retried after its reply was lost would be
	// delivered twice.
	ropts.MaxRetries = -1
	// Without this go-redis sets every socket deadline from ReadTimeout and
	// WriteTimeout alone (5s by default) and ignores the context's deadline,
	// so a frozen Redis held each publish for 5s whatever its budget. With
	// it the deadline is the earlier of the two, on the pool wait, the dial,
	// the handshake and the command alike. Publish and Ping still guard
	// themselves (see await) for the paths that ignore deadlines.
	ropts.ContextTimeoutEnabled = true
	c := redis.NewClient(ropts)
	o := c.Options()
	return &backend{
		UniversalClient: c,
		addr:            o.Addr,
		dialTimeout:     o.DialTimeout,
		confirmTimeout:  o.DialTimeout + o.ReadTimeout,
	}, nil
}

// pickDialTimeout prefers Options.DialTimeout, then the URL's dial_timeout,
// then DefaultDialTimeout.
func pickDialTimeout(opt, fromURL time.Duration) time.Duration {
	switch {
	case opt > 0:
		return opt
	case fromURL > 0:
		return fromURL
	}
	return DefaultDialTimeout
}

// ping checks the node that matters: for a cluster, the owner of the
// events channel's slot rather than whichever node answers first.
func (c *backend) ping(ctx context.Context, channel string) error {
	if c.topo == nil {
		return c.Ping(ctx).Err()
	}
	node, err := c.topo.MasterForKey(ctx, channel)
	if err != nil {
		return fmt.Errorf("find the node of %s: %w", channel, err)
	}
	if err := node.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("node %s: %w", node.Options().Addr, err)
	}
	return nil
}

// reloadTopology asks a cluster client to refresh its slot map, after a
// hint that it is stale (a failed connection, a MOVED reply, a subscription
// the server dropped). It returns at once; a single server ignores it.
func (c *backend) reloadTopology(ctx context.Context) {
	if c.topo != nil {
		c.topo.ReloadState(ctx)
	}
}

// noRetry marks a command as not to be sent twice. The cluster client
// re-sends a command after a network error (up to MaxRedirects times)
// whatever MaxRetries says, and a PUBLISH re-sent after its reply was lost
// is delivered twice. MOVED and ASK redirects are still followed: Redis
// answers them without running the command.
type noRetry struct{ *redis.IntCmd }

// NoRetry tells go-redis not to re-send the command.
func (noRetry) NoRetry() bool { return true }

// parseURL accepts only redis:// and rediss:// URLs and keeps any password
// out of its errors.
func parseURL(raw string) (*redis.Options, error) {
	u, err := checkURL(raw)
	if err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisbus: invalid URL %q: %w", redactURL(raw), scrub(err, u))
	}
	return ropts, nil
}

// parseClusterURL accepts redis://[user:pass@]host:port?addr=host2:port2&...
// (or rediss://); every address is a seed node, and the client learns the
// rest of the cluster from them. A database other than 0 is refused because
// a cluster has only database 0.
func parseClusterURL(raw string) (*redis.ClusterOptions, error) {
	u, err := checkURL(raw)
	if err != nil {
		return nil, err
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("redisbus: invalid URL %q: a cluster has only database 0", redactURL(raw))
	}
	// go-redis quotes a bad addr value in its error, and the value may hold
	// a password pasted in the wrong place: check them first, by position.
	for i, a := range u.Query()["addr"] {
		h, p, err := net.SplitHostPort(a)
		if err != nil || h == "" || p == "" || strings.ContainsAny(a, "@/") {
			return nil, fmt.Errorf("redisbus: invalid URL %q: addr parameter %d is not host:port", redactURL(raw), i+1)
		}
	}
	copts, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisbus: invalid URL %q: %w", redactURL(raw), scrub(err, u))
	}
	return copts, nil
}

// checkURL parses raw for the checks go-redis does not make, with errors
// that never quote the password: url.Parse quotes the whole input in its
// messages.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var eerr url.EscapeError
		if errors.As(err, &eerr) {
			err = errors.New("invalid percent-encoding") // the escape may be part of the password
		}
		return nil, fmt.Errorf("redisbus: invalid URL %q: %w", redactURL(raw), err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redisbus: invalid URL %q: scheme must be redis or rediss", redactURL(raw))
	}
	return u, nil
}

// scrub replaces the URL's password in err's message, as a second line of
// defence should a go-redis error ever quote it.
func scrub(err error, u *url.URL) error {
	pass, ok := u.User.Password()
	if !ok || pass == "" || !strings.Contains(err.Error(), pass) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pass, "xxxxx"))
}

// redactURL hides the user info of a URL that may not even parse. It errs
// on the side of hiding too much: everything before the last '@'.
func redactURL(raw string) string {
	scheme, rest := "", raw
	if i := strings.Index(raw, "://"); i >= 0 {
		scheme, rest = raw[:i+3], raw[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx@" + rest[i+1:]
	}
	return scheme + rest
}
