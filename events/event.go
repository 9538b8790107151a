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
	"strconv"
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

// ChannelBooks is the channel that carries every book change. Each book also
// has its own channel, named by BookChannel.
const ChannelBooks = "books"

// BookChannel returns the channel of one book, "books:<id>".
func BookChannel(id int64) string { return ChannelBooks + ":" + strconv.FormatInt(id, 10) }

// Event is one committed change. Its JSON form is what WebSocket clients see
// (the hub adds "type" and "channel" in front of it).
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
	// Offset is reserved for per-channel offsets (gap-free delivery); zero
	// means "not assigned" and is omitted.
	Offset uint64 `json:"offset,omitempty"`
}

// Channels returns the channels an event is delivered on: the firehose
// "books" and the book's own channel.
func (e Event) Channels() []string {
	return []string{ChannelBooks, BookChannel(e.BookID)}
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
