// Package events defines the change event that bookhub publishes after every
// committed write, and the bus that carries it between instances.
//
// The package sits below both rest (which publishes) and hub (which delivers),
// so neither has to know the other.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// Type names what happened to a book.
type Type string

// The event types bookhub publishes.
const (
	BookCreated Type = "book.created"
	BookUpdated Type = "book.updated"
	BookDeleted Type = "book.deleted"
)

// Known reports whether t is one of the types above. A bus that receives
// events from outside the process (Redis) refuses any other type, so a
// forged or future type never reaches a client; a new type must be added
// here to be carried.
func (t Type) Known() bool {
	switch t {
	case BookCreated, BookUpdated, BookDeleted:
		return true
	}
	return false
}

// Event is one committed change as the bus carries it between instances.
// It is not what WebSocket clients see: the hub frames each delivery in its
// own type, with the position of the channel it is delivered on.
//
// Book holds the book exactly as the REST API renders it, already encoded, so
// that the bus and the hub forward it without knowing the book schema.
type Event struct {
	// ID is unique per event; receivers can use it to drop duplicates.
	ID   string `json:"id"`
	Type Type   `json:"event"`
	// BookID is the id of the changed book; it names the per-book channel.
	BookID int64           `json:"book_id"`
	Book   json.RawMessage `json:"book"`
	// At is the commit time of the change.
	At time.Time `json:"at"`
	// Origin is the instance that accepted the write.
	Origin string `json:"origin,omitempty"`
	// Positions is the event's place on each channel it is delivered on,
	// "books" first (see Channels). Offsets grow by exactly one per event on
	// each channel, in commit order.
	Positions []Position `json:"positions"`
}

// Position is a place in one channel's stream: the offset of an event (or,
// for a channel's current position, of its latest event; 0 before the
// first) and the epoch of the channel's history. Offsets are comparable only
// within one epoch: a new epoch means the history was reset.
type Position struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
	Epoch   string `json:"epoch"`
}

// Channels returns the channels an event is delivered on, in the order of
// its positions: the firehose "books" and the book's own channel.
func (e Event) Channels() []string {
	out := make([]string, len(e.Positions))
	for i, p := range e.Positions {
		out[i] = p.Channel
	}
	return out
}

// Position returns the event's position on channel, and false if the event
// is not delivered there.
func (e Event) Position(channel string) (Position, bool) {
	for _, p := range e.Positions {
		if p.Channel == channel {
			return p, true
		}
	}
	return Position{}, false
}

// NewID returns a random event id (128 bits, hex).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// Handler receives events from a Bus. It is called from the bus's own
// goroutine, one event at a time, and must not block: a slow handler delays
// every later event.
type Handler func(Event)

// ErrUndeliverable is wrapped by a Publish error that retrying cannot cure:
// the bus refuses this event as it is (too large, malformed). Other errors
// (Redis unreachable) are worth retrying.
var ErrUndeliverable = errors.New("events: event cannot be carried by the bus")

// Publisher publishes committed changes.
type Publisher interface {
	// Publish sends ev to every subscriber of the bus, on every instance.
	// It returns once the bus has accepted the event; an error means the event
	// may not have been delivered anywhere.
	Publish(ctx context.Context, ev Event) error
}

// Bus carries events between the instances of a deployment.
//
// Delivery guarantee: at most once. Every subscriber that is subscribed when
// an event is published receives it once, in the order the publishing
// instance published it; an event published while the bus is disconnected
// (Redis down) is lost and Publish reports an error. Gap-free delivery is
// layered above the bus, not promised by it.
type Bus interface {
	Publisher
	// Subscribe registers h and returns once the subscription is active, so
	// events published after Subscribe returns reach h. Delivery stops when
	// ctx is done or the bus is closed.
	Subscribe(ctx context.Context, h Handler) error
	// Ping reports whether the bus can currently carry events.
	Ping(ctx context.Context) error
	// Close stops all subscriptions and releases the bus's resources.
	Close() error
}
