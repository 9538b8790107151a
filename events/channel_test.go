package events_test

import (
	"testing"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/events"
)

func TestParseChannel(t *testing.T) {
	for name, want := range map[string]int64{
		"books": 0, "books:1": 1, "books:9223372036854775807": 9223372036854775807,
	} {
		if id, ok := events.ParseChannel(name); !ok || id != want {
			t.Errorf("ParseChannel(%q) = %d, %v; want %d, true", name, id, ok, want)
		}
	}
	for _, name := range []string{"books:0", "books:01", "books:-1", "books:", "books:x",
		"books:9223372036854775808", "authors", "", "books:1:2", "books:+1", " books"} {
		if _, ok := events.ParseChannel(name); ok || events.ValidChannel(name) {
			t.Errorf("ParseChannel(%q) accepted it", name)
		}
	}
	if got := events.BookChannel(42); got != "books:42" {
		t.Errorf("BookChannel(42) = %q", got)
	}
}

func TestChannelLabel(t *testing.T) {
	for name, want := range map[string]string{"books": "books", "books:42": "books:<id>", "nope": "other"} {
		if got := events.ChannelLabel(name); got != want {
			t.Errorf("ChannelLabel(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestChannelAllowed(t *testing.T) {
	for _, tc := range []struct {
		role    auth.Role
		channel string
		want    bool
	}{
		{auth.RoleViewer, "books", true},
		{auth.RoleViewer, "books:7", true},
		{auth.RoleAdmin, "books:7", true},
		{auth.RoleViewer, "users", false},
		{auth.RoleAdmin, "books:007", false},
		{auth.Role(""), "books", false},
		{auth.Role("root"), "books", false},
	} {
		if got := events.ChannelAllowed(tc.role, tc.channel); got != tc.want {
			t.Errorf("ChannelAllowed(%q, %q) = %v, want %v", tc.role, tc.channel, got, tc.want)
		}
	}
}
