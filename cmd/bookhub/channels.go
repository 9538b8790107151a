package main

import (
	"strconv"
	"strings"

	"github.com/bookhub/bookhub/events"
)

// validChannel accepts the channels bookhub publishes on: "books" and
// "books:<id>" with a positive decimal id without leading zeros (so one book
// has exactly one channel name).
func validChannel(name string) bool {
	if name == events.ChannelBooks {
		return true
	}
	rest, ok := strings.CutPrefix(name, events.ChannelBooks+":")
	if !ok || rest == "" || rest[0] == '0' {
		return false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return err == nil && id > 0 && strconv.FormatInt(id, 10) == rest
}
