// Package redisconn opens bookhub's Redis clients and names its keys, so
// that URL parsing, credential hygiene and the key scheme are written once
// for every package that talks to Redis (events/redisbus, authstate).
//
// Open builds a go-redis client from a redis:// or rediss:// URL, for one
// server or, with Options.Cluster, a Redis Cluster; it never touches the
// network. Its errors, and Redact and Scrub, never repeat the URL's
// password. Keys holds the key and channel names (see Keys).
package redisconn

import (
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultDialTimeout bounds one connection attempt when neither
// Options.DialTimeout nor the URL's dial_timeout says otherwise.
const DefaultDialTimeout = 5 * time.Second

// Options configures Open. Zero values take the documented defaults.
type Options struct {
	// Cluster reads the URL as a list of seed nodes, in the syntax of
	// go-redis ParseClusterURL (redis://[user:pass@]host1:6379?addr=host2:6379),
	// and builds a cluster client that routes by hash slot. The path may
	// only be empty, "/" or "/0": a cluster has only database 0.
	Cluster bool
	// DialTimeout bounds each connection attempt. Default: the URL's
	// dial_timeout, else DefaultDialTimeout.
	DialTimeout time.Duration
}

// Client is a go-redis client together with what its users need to log
// and bound it. It implements redis.UniversalClient; Close releases it.
type Client struct {
	redis.UniversalClient
	// Cluster is the same client as a *redis.ClusterClient, for the
	// cluster-only steps (slot lookup, topology reload); nil for one server.
	Cluster *redis.ClusterClient
	// Addr names the server, or the seed nodes of a cluster joined by
	// commas, for logs and errors. It never holds credentials.
	Addr string
	// DialTimeout bounds one connection attempt (defaults filled in).
	DialTimeout time.Duration
	// ReadTimeout bounds one read when the context has no earlier deadline
	// (go-redis default 5s; read_timeout in the URL).
	ReadTimeout time.Duration
}

// Open parses rawURL and builds the client; it does not connect, so a
// caller that wants to know Redis answers pings it.
//
// Two settings are fixed, whatever the URL says, because bookhub relies on
// them:
//   - Commands are never retried by go-redis (MaxRetries -1): a PUBLISH or
//     INCR re-sent after its reply was lost would take effect twice, so
//     each caller decides what a failure means. (A cluster client still
//     follows MOVED and ASK redirects; Redis answers those without running
//     the command.)
//   - Socket deadlines follow the caller's context (ContextTimeoutEnabled).
//     Without it go-redis sets every deadline from ReadTimeout and
//     WriteTimeout alone (5s by default) and ignores the context's, so a
//     frozen Redis held each call for 5s whatever its budget.
func Open(rawURL string, o Options) (*Client, error) {
	if o.DialTimeout < 0 {
		return nil, errorf(rawURL, "negative dial timeout")
	}
	if o.Cluster {
		copts, err := parseClusterURL(rawURL)
		if err != nil {
			return nil, err
		}
		copts.DialTimeout = pickDialTimeout(o.DialTimeout, copts.DialTimeout)
		copts.MaxRetries = -1
		copts.ContextTimeoutEnabled = true
		c := redis.NewClusterClient(copts)
		opts := c.Options() // defaults filled in
		return &Client{
			UniversalClient: c,
			Cluster:         c,
			Addr:            strings.Join(opts.Addrs, ","),
			DialTimeout:     opts.DialTimeout,
			ReadTimeout:     opts.ReadTimeout,
		}, nil
	}
	ropts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	ropts.DialTimeout = pickDialTimeout(o.DialTimeout, ropts.DialTimeout)
	ropts.MaxRetries = -1
	ropts.ContextTimeoutEnabled = true
	c := redis.NewClient(ropts)
	opts := c.Options()
	return &Client{
		UniversalClient: c,
		Addr:            opts.Addr,
		DialTimeout:     opts.DialTimeout,
		ReadTimeout:     opts.ReadTimeout,
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
