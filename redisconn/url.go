package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// errorf builds an Open error that names the URL with its password hidden.
func errorf(raw, format string, args ...any) error {
	return fmt.Errorf("redisconn: invalid URL %q: %s", Redact(raw), fmt.Sprintf(format, args...))
}

// parseURL accepts only redis:// and rediss:// URLs and keeps any password
// out of its errors.
func parseURL(raw string) (*redis.Options, error) {
	if _, err := checkURL(raw); err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisconn: invalid URL %q: %w", Redact(raw), Scrub(err, raw))
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
		return nil, errorf(raw, "a cluster has only database 0")
	}
	// go-redis quotes a bad addr value in its error, and the value may hold
	// a password pasted in the wrong place: check them first, by position.
	for i, a := range u.Query()["addr"] {
		h, p, err := net.SplitHostPort(a)
		if err != nil || h == "" || p == "" || strings.ContainsAny(a, "@/") {
			return nil, errorf(raw, "addr parameter %d is not host:port", i+1)
		}
	}
	copts, err := redis.ParseClusterURL(raw)
	if err != nil {
		return nil, fmt.Errorf("redisconn: invalid URL %q: %w", Redact(raw), Scrub(err, raw))
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
		return nil, fmt.Errorf("redisconn: invalid URL %q: %w", Redact(raw), Scrub(err, raw))
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, errorf(raw, "scheme must be redis or rediss")
	}
	return u, nil
}

// Scrub replaces the password of rawURL in err's message with "xxxxx", as
// a second line of defence should an error from a library ever quote it.
// It returns err itself when the message holds no password, so errors.Is
// and errors.As keep working in the common case; a scrubbed error is a new,
// flat error.
func Scrub(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	pass := password(rawURL)
	if pass == "" || !strings.Contains(err.Error(), pass) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pass, "xxxxx"))
}

// password returns the password of a URL that may not even parse: after
// the first ':' of the user info, which is everything before the last '@'.
func password(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		p, _ := u.User.Password()
		return p
	}
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return ""
	}
	_, p, _ := strings.Cut(rest[:i], ":")
	return p
}

// Redact hides the user info of a URL that may not even parse, for logs and
// errors. It errs on the side of hiding too much: everything between the
// scheme and the last '@' becomes "xxxxx".
func Redact(rawURL string) string {
	scheme, rest := "", rawURL
	if i := strings.Index(rawURL, "://"); i >= 0 {
		scheme, rest = rawURL[:i+3], rawURL[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx@" + rest[i+1:]
	}
	return scheme + rest
}
