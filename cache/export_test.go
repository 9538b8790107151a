package cache

// SetJoined installs a hook called after each miss joined its load.
func SetJoined(c *Books, f func()) { c.joined = f }
