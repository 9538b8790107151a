package redisbus

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/redisconn"
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

// newBackend parses raw and builds the client (see redisconn.Open, which
// also makes it at most once: publishes are never retried); it does not
// touch the network. dialTimeout overrides a dial_timeout from the URL when
// positive.
func newBackend(raw string, cluster bool, dialTimeout time.Duration) (*backend, error) {
	c, err := redisconn.Open(raw, redisconn.Options{Cluster: cluster, DialTimeout: dialTimeout})
	if err != nil {
		return nil, fmt.Errorf("redisbus: %w", err)
	}
	b := &backend{
		UniversalClient: c,
		addr:            c.Addr,
		dialTimeout:     c.DialTimeout,
		confirmTimeout:  c.DialTimeout + c.ReadTimeout,
	}
	if c.Cluster != nil {
		b.topo = c.Cluster
	}
	return b, nil
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
