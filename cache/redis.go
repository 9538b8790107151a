package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/redisconn"
)

// generationTTL is how long a generation key lives after it was created or
// last bumped. Expiry only costs misses: a generation that comes back
// starts at a random value, never at one an entry may still carry. It
// bounds Redis memory to one small key per namespace touched in a day.
const generationTTL = 24 * time.Hour

// Generations start at a random value below 2^62 (and are INCRed from
// there), not at 0: were Redis to lose its data (a restart without
// persistence) and counting to start again at 0, a reader that captured a
// generation before the loss could find the same number current after a
// write and store its stale value. A random start makes that a 2^-62
// coincidence.
func nonce() string { return strconv.FormatInt(rand.Int64N(1<<62)+1, 10) }

// lookupScript: KEYS = gen(all), gen(ns), entry; ARGV = nonce for each
// generation, generation TTL (ms). It returns {tag} on a miss and {tag,
// value, remaining TTL of the entry in ms} on a hit (the local layer keeps
// a copy no longer than that). Missing generations are created, so the tag
// a miss returns is one store can compare.
var lookupScript = redis.NewScript(`
local function gen(k, n)
  local g = redis.call('GET', k)
  if not g then
    redis.call('SET', k, n, 'PX', ARGV[3])
    g = n
  end
  return g
end
local t = gen(KEYS[1], ARGV[1]) .. '.' .. gen(KEYS[2], ARGV[2])
local e = redis.call('GET', KEYS[3])
if e and string.sub(e, 1, #t + 1) == t .. '|' then
  return {t, string.sub(e, #t + 2), redis.call('PTTL', KEYS[3])}
end
return {t}
`)

// storeScript: KEYS = gen(all), gen(ns), entry; ARGV = tag, value, entry
// TTL (ms). It sets the entry only while tag is current.
var storeScript = redis.NewScript(`
local a = redis.call('GET', KEYS[1])
local n = redis.call('GET', KEYS[2])
if a and n and (a .. '.' .. n) == ARGV[1] then
  redis.call('SET', KEYS[3], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

// bumpScript: KEYS = generations; ARGV = generation TTL (ms), then a nonce
// per key. It moves every generation to a value it never had.
var bumpScript = redis.NewScript(`
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    redis.call('INCR', k)
  else
    redis.call('SET', k, ARGV[i + 1])
  end
  redis.call('PEXPIRE', k, ARGV[1])
end
return #KEYS
`)

// generationsScript: KEYS = gen(all), then gen(ns) for each namespace. It
// returns their values, false for a missing one. It only reads: a missing
// generation makes every tag stale, and the lookup that follows creates it.
// It is MGET in a script so that a cluster client sends it to the node of
// the "{cache}" slot like every other cache call.
var generationsScript = redis.NewScript(`
return redis.call('MGET', unpack(KEYS))
`)

// redisBackend keeps generations and entries in Redis, one script (one
// round trip) per operation. A tag is "<gen of all>.<gen of ns>".
type redisBackend struct {
	c     redis.UniversalClient
	keys  redisconn.Keys
	ttlMS string
	genMS string
}

func newRedisBackend(c redis.UniversalClient, keys redisconn.Keys, ttl time.Duration) *redisBackend {
	return &redisBackend{
		c:     c,
		keys:  keys,
		ttlMS: strconv.FormatInt(max(ttl.Milliseconds(), 1), 10),
		genMS: strconv.FormatInt(generationTTL.Milliseconds(), 10),
	}
}

func (r *redisBackend) layer() string { return LayerRedis }

func (r *redisBackend) lookup(ctx context.Context, ns, key string) (found, error) {
	keys := []string{r.keys.CacheGeneration(nsAll), r.keys.CacheGeneration(ns), r.keys.CacheEntry(ns, key)}
	res, err := lookupScript.Run(ctx, r.c, keys, nonce(), nonce(), r.genMS).Slice()
	if err != nil {
		return found{}, fmt.Errorf("cache: look up %s: %w", keys[2], err)
	}
	tag, ok := res[0].(string)
	if !ok {
		return found{}, errors.New("cache: look up: malformed reply")
	}
	if len(res) < 3 {
		return found{gen: tag}, nil
	}
	raw, _ := res[1].(string)
	v, err := decodeValue([]byte(raw))
	if err != nil {
		// Unreadable (written by another version?): a miss that overwrites it.
		return found{gen: tag}, nil //nolint:nilerr // a miss, not a failure
	}
	f := found{v: v, gen: tag, ok: true}
	if ms, _ := res[2].(int64); ms > 0 {
		f.ttl = time.Duration(ms) * time.Millisecond
	}
	return f, nil
}

// generations returns the current tag of each of nss ("<gen of all>.<gen
// of ns>", as lookup returns it), in one round trip; a namespace whose
// generation (or "all"'s) is missing gets "", which matches no tag.
func (r *redisBackend) generations(ctx context.Context, nss []string) ([]string, error) {
	keys := make([]string, 0, len(nss)+1)
	keys = append(keys, r.keys.CacheGeneration(nsAll))
	for _, ns := range nss {
		keys = append(keys, r.keys.CacheGeneration(ns))
	}
	res, err := generationsScript.Run(ctx, r.c, keys).Slice()
	if err != nil {
		return nil, fmt.Errorf("cache: check %d generations: %w", len(nss), err)
	}
	if len(res) != len(keys) {
		return nil, fmt.Errorf("cache: check generations: %d values for %d keys", len(res), len(keys))
	}
	tags := make([]string, len(nss))
	all, _ := res[0].(string)
	if all == "" {
		return tags, nil
	}
	for i := range nss {
		if g, _ := res[i+1].(string); g != "" {
			tags[i] = all + "." + g
		}
	}
	return tags, nil
}

func (r *redisBackend) store(ctx context.Context, ns, key, gen string, v any) error {
	raw, err := encodeValue(v)
	if err != nil {
		return err
	}
	keys := []string{r.keys.CacheGeneration(nsAll), r.keys.CacheGeneration(ns), r.keys.CacheEntry(ns, key)}
	if err := storeScript.Run(ctx, r.c, keys, gen, raw, r.ttlMS).Err(); err != nil {
		return fmt.Errorf("cache: store %s: %w", keys[2], err)
	}
	return nil
}

func (r *redisBackend) bump(ctx context.Context, nss []string) error {
	if len(nss) == 0 {
		return nil
	}
	keys := make([]string, len(nss))
	args := make([]any, 1, len(nss)+1)
	args[0] = r.genMS
	for i, ns := range nss {
		keys[i] = r.keys.CacheGeneration(ns)
		args = append(args, nonce())
	}
	if err := bumpScript.Run(ctx, r.c, keys, args...).Err(); err != nil {
		return fmt.Errorf("cache: bump %v: %w", nss, err)
	}
	return nil
}
