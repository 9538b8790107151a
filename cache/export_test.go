package cache

// SetJoined installs a hook called after each miss joined its load.
func SetJoined(c *Books, f func()) { c.joined = f }

// SetCheckHooks installs hooks on the local layer's checks: ran is called
// once a check's round trip returned, before its readers learn the result;
// queued once a reader queued behind a check in flight. Either may be nil.
// Without a local layer it does nothing.
func SetCheckHooks(c *Books, ran func(nss []string), queued func(ns string)) {
	if c.check != nil {
		c.check.ran, c.check.queued = ran, queued
	}
}

// LocalLen is the number of copies in the local layer (0 without one).
func LocalLen(c *Books) int {
	if c.local == nil {
		return 0
	}
	return c.local.len()
}
