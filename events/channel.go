package events

import (
	"strconv"
	"strings"

	"github.com/bookhub/bookhub/auth"
)

// The channel naming scheme, defined here and only here: the hub validates
// subscriptions with ValidChannel, the store and the feed assign positions
// per channel, metrics label by ChannelLabel.
const (
	// ChannelBooks carries every book change, in commit order.
	ChannelBooks = "books"
	// bookChannelPrefix starts each book's own channel, "books:<id>".
	bookChannelPrefix = ChannelBooks + ":"
)

// BookChannel returns the channel of one book, "books:<id>".
func BookChannel(id int64) string { return bookChannelPrefix + strconv.FormatInt(id, 10) }

// ParseChannel splits a channel name. It returns bookID 0 for "books", the
// id for "books:<id>" (a positive decimal without leading zeros, so one book
// has exactly one channel name), and ok false for anything else.
func ParseChannel(name string) (bookID int64, ok bool) {
	if name == ChannelBooks {
		return 0, true
	}
	rest, found := strings.CutPrefix(name, bookChannelPrefix)
	if !found || rest == "" || rest[0] == '0' || len(rest) > 19 {
		return 0, false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return 0, false // ParseInt would take a sign
		}
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}

// ValidChannel reports whether clients may subscribe to name.
func ValidChannel(name string) bool {
	_, ok := ParseChannel(name)
	return ok
}

// ChannelLabel maps a channel to a metrics label of bounded cardinality:
// "books" stays itself and every per-book channel is "books:<id>".
func ChannelLabel(name string) string {
	if name == ChannelBooks {
		return ChannelBooks
	}
	if _, ok := ParseChannel(name); ok {
		return bookChannelPrefix + "<id>"
	}
	return "other"
}

// channelRoles is the channel policy, next to the naming scheme: the least
// role that may subscribe to each kind of channel. Every book channel is
// open to every signed-in role; what only staff may see (cost prices,
// suppliers) travels in a payload variant of the same events instead of a
// channel of its own, so one subscription serves every role. A channel only
// some roles may read gets its entry here.
var channelRoles = map[string]auth.Role{
	ChannelBooks:      auth.RoleViewer,
	bookChannelPrefix: auth.RoleViewer,
}

// ChannelAllowed reports whether a holder of role may subscribe to name.
// Names that are not channels are never allowed.
func ChannelAllowed(role auth.Role, name string) bool {
	id, ok := ParseChannel(name)
	if !ok {
		return false
	}
	key := ChannelBooks
	if id != 0 {
		key = bookChannelPrefix
	}
	min, ok := channelRoles[key]
	return ok && role.AtLeast(min)
}
