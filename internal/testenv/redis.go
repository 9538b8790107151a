package testenv

import (
	"fmt"
	"net/url"
)

func redisAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return "", fmt.Errorf("want redis://host:port/db")
	}
	host := u.Host
	if u.Port() == "" {
		host += ":6379"
	}
	return host, nil
}
