package redisconn

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix starts every bookhub key and channel unless configured
// otherwise.
const DefaultPrefix = "bookhub:"

// Hash tags: Redis Cluster hashes only the part of a key inside the first
// {...}, so every key with the same tag lives in the same slot, on the same
// node, whatever the prefix.
const (
	// booksTag pins the events channel to one slot so that one node orders
	// all book events (see package events/redisbus). "books" is
	// events.ChannelBooks.
	booksTag = "{books}"
	// authTag puts every key of the shared auth state in one slot. The
	// revocation list needs it: Revoke updates the set and its version
	// counter in one MULTI, and a cluster refuses a transaction over keys
	// of different slots (CROSSSLOT). Tickets and rate-limit counters are
	// single-key and would work anywhere; they share the tag so that all
	// auth state fails over, and can be inspected, as one unit. The price
	// is that this state does not spread over the shards: one shard
	// carries every rate-limit INCR. Should that node become the
	// bottleneck, RateLimit can move to a per-key tag
	// ("{auth:rl:<key>}") without touching its callers.
	authTag = "{auth}"
	// cacheTag puts every key of the read cache (package cache) in one
	// slot, because its scripts touch several keys at once: a lookup reads
	// the "all" generation, the entry's namespace generation and the entry;
	// a write bumps the generations of "list" and of the book together. A
	// cluster refuses a script over keys of different slots. The price is
	// that one shard carries all cache traffic; a per-book tag would spread
	// the book entries but cannot keep them in one slot with "list".
	cacheTag = "{cache}"
)

// Keys names every Redis key and channel bookhub uses, under one prefix,
// so that several deployments can share a Redis and so that the scheme is
// written down in one place. The zero value uses DefaultPrefix.
//
// Layout (with the default prefix):
//
//	bookhub:{books}:events                  pub/sub channel of book events
//	bookhub:{auth}:revocations              sorted set of revocations, score = expiry (ms)
//	bookhub:{auth}:revocations:version      counter bumped by every revocation
//	bookhub:{auth}:ticket:<id>              one-time WebSocket ticket (id = hash of the ticket)
//	bookhub:{auth}:ratelimit:<scope>:<key>  fixed-window request counter
//	bookhub:{cache}:gen:<ns>                generation of a cache namespace ("all", "list", "book:<id>")
//	bookhub:{cache}:entry:<ns>#<key>        one cached value, tagged with its generations
type Keys struct {
	// Prefix starts every key and channel. Default DefaultPrefix. It must
	// not contain '{' or '}', which would change the keys' hash tags.
	Prefix string
}

// ErrBadPrefix is returned by Keys.Validate for a prefix with a brace.
var ErrBadPrefix = errors.New("redisconn: prefix must not contain '{' or '}'")

// Validate refuses a prefix that would change the hash tags.
func (k Keys) Validate() error {
	if strings.ContainsAny(k.Prefix, "{}") {
		return fmt.Errorf("%w: %q", ErrBadPrefix, k.Prefix)
	}
	return nil
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// Events is the pub/sub channel that carries every book event.
func (k Keys) Events() string { return k.prefix() + booksTag + ":events" }

// Revocations is the sorted set of token revocations.
func (k Keys) Revocations() string { return k.prefix() + authTag + ":revocations" }

// RevocationsVersion is the counter that changes whenever Revocations
// gains an entry, so instances can poll one small key instead of the set.
func (k Keys) RevocationsVersion() string { return k.prefix() + authTag + ":revocations:version" }

// Tickets is the key of one one-time ticket; id must be a hash of the
// ticket, never the ticket itself, so that reading Redis does not hand out
// usable tickets.
func (k Keys) Tickets(id string) string { return k.prefix() + authTag + ":ticket:" + id }

// RateLimit is the counter of key (a user, an address) under scope (which
// limit: "login", "api"). scope is a constant of the program and must not
// contain ':', which keeps "a:b"+"c" and "a"+"b:c" apart; key may be
// anything.
func (k Keys) RateLimit(scope, key string) string {
	return k.prefix() + authTag + ":ratelimit:" + scope + ":" + key
}

// CacheGeneration is the generation counter of the cache namespace ns
// ("list", "book:<id>", "all"); see package cache.
func (k Keys) CacheGeneration(ns string) string { return k.prefix() + cacheTag + ":gen:" + ns }

// CacheEntry is one cached value of namespace ns under key. ns is chosen
// by the program and must not contain '#', which keeps ("a#b", "c") and
// ("a", "b#c") apart; key may be anything.
func (k Keys) CacheEntry(ns, key string) string {
	return k.prefix() + cacheTag + ":entry:" + ns + "#" + key
}
