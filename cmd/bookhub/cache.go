package main

import (
	"fmt"

	"github.com/bookhub/bookhub/cache"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/metrics"
	"github.com/bookhub/bookhub/redisconn"
)

// openReadCache puts the read cache in front of the store: in Redis when
// Redis is configured (shared by every instance, with the local layer in
// front unless BOOKHUB_READ_CACHE_LOCAL=false: its copies are served only
// after a freshness check, so a write acknowledged anywhere is read back
// everywhere), in-process otherwise.
func (a *App) openReadCache() error {
	counted := countingStore{a.store, a.metrics}
	if !a.cfg.ReadCache {
		a.books = counted
		return nil
	}
	opts := cache.Options{
		Keys:     redisconn.Keys{Prefix: a.cfg.RedisPrefix},
		NoLocal:  !a.cfg.ReadCacheLocal,
		Observer: cacheMetrics{a.metrics},
		Logger:   a.log,
	}
	if a.sec.redis != nil {
		opts.Redis = a.sec.redis
	}
	c, err := cache.New(counted, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", config.EnvReadCache, err)
	}
	a.cache, a.books = c, c
	return nil
}

// cacheMetrics adapts metrics to cache.Observer.
type cacheMetrics struct{ m *metrics.Metrics }

var _ cache.Observer = cacheMetrics{}

func (c cacheMetrics) Hit(layer string)          { c.m.CacheHit(layer) }
func (c cacheMetrics) Miss(layer string)         { c.m.CacheMiss(layer) }
func (c cacheMetrics) Invalidation(layer string) { c.m.CacheInvalidation(layer) }
func (c cacheMetrics) Error(layer, op string)    { c.m.CacheError(layer, op) }
