package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/hub"
	"github.com/bookhub/bookhub/metrics"
	"github.com/bookhub/bookhub/relay"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// The event path, end to end:
//
//	write txn (store: book row + outbox row) -> OnCommit -> relay -> bus
//	bus -> feed (orders, de-duplicates, fills gaps from store history)
//	    -> hub.Publish (frames per channel with offset and epoch)
//
// and, for a client resuming: hub -> hubHistory -> store history. Everything
// here converts between those packages' types; none of them knows another.

// renderChange is the one conversion from an outbox change to the bus event:
// the relay publishes with it and both history adapters read with it.
func renderChange(c store.Change) (events.Event, error) {
	book, err := rest.EncodeBook(c.Book)
	if err != nil {
		return events.Event{}, fmt.Errorf("render change %d: %w", c.Offset, err)
	}
	return events.Event{
		ID: c.EventID, Type: c.Type, BookID: c.Book.ID, Book: book, At: c.At.UTC(), Origin: c.Origin,
		Positions: []events.Position{
			{Channel: events.ChannelBooks, Offset: c.Offset, Epoch: c.Epoch},
			{Channel: events.BookChannel(c.Book.ID), Offset: c.BookOffset, Epoch: c.Epoch},
		},
	}, nil
}

// eventData is what WebSocket clients see of an event, inside the hub's
// frame (which adds type, channel, offset and epoch): the bus event minus
// its positions, which differ per channel.
type eventData struct {
	ID     string          `json:"id"`
	Type   events.Type     `json:"event"`
	BookID int64           `json:"book_id"`
	Book   json.RawMessage `json:"book"`
	At     time.Time       `json:"at"`
	Origin string          `json:"origin,omitempty"`
}

// encodeEventData renders an event once per payload variant: the default
// (what viewers see: the book without its staff-only fields) and
// variantStaff (editors and admins: the book as the bus carries it). The
// hub frames each variant once per channel, whatever the number of
// subscribers, and never sends a connection another variant's payload.
func encodeEventData(ev events.Event) (public []byte, variants map[string][]byte, err error) {
	staff, err := json.Marshal(eventData{ID: ev.ID, Type: ev.Type, BookID: ev.BookID, Book: ev.Book,
		At: ev.At.UTC(), Origin: ev.Origin})
	if err != nil {
		return nil, nil, err
	}
	book, err := rest.PublicBook(ev.Book)
	if err != nil {
		return nil, nil, err
	}
	public, err = json.Marshal(eventData{ID: ev.ID, Type: ev.Type, BookID: ev.BookID, Book: book,
		At: ev.At.UTC(), Origin: ev.Origin})
	if err != nil {
		return nil, nil, err
	}
	return public, map[string][]byte{variantStaff: staff}, nil
}

// publication turns a bus event into what the hub delivers.
func publication(ev events.Event) (hub.Publication, error) {
	data, variants, err := encodeEventData(ev)
	if err != nil {
		return hub.Publication{}, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	// One key per book: a conflating client keeps only a book's newest change.
	p := hub.Publication{Data: data, Variants: variants, Key: strconv.FormatInt(ev.BookID, 10), Positions: make([]hub.Position, len(ev.Positions))}
	for i, pos := range ev.Positions {
		p.Positions[i] = hub.Position{Channel: pos.Channel, Offset: pos.Offset, Epoch: pos.Epoch}
	}
	return p, nil
}

// historyReader is the part of the store the history adapters need.
type historyReader interface {
	History(ctx context.Context, channel string, after uint64, limit int) ([]store.Change, store.Position, error)
}

// feedHistory serves the feed's reads of the "books" history.
type feedHistory struct{ s historyReader }

func (h feedHistory) Since(ctx context.Context, after uint64, limit int) ([]events.Event, events.Position, error) {
	changes, pos, err := h.s.History(ctx, events.ChannelBooks, after, limit)
	if err != nil {
		return nil, events.Position{}, err
	}
	out := make([]events.Event, 0, len(changes))
	for _, c := range changes {
		ev, err := renderChange(c)
		if err != nil {
			return nil, events.Position{}, err
		}
		out = append(out, ev)
	}
	return out, events.Position{Channel: events.ChannelBooks, Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

// hubHistory serves resuming WebSocket clients, on any channel.
type hubHistory struct{ s historyReader }

func (h hubHistory) Since(ctx context.Context, channel string, after uint64, limit int) ([]hub.Entry, hub.Position, error) {
	changes, pos, err := h.s.History(ctx, channel, after, limit)
	if err != nil {
		return nil, hub.Position{}, err
	}
	out := make([]hub.Entry, 0, len(changes))
	for _, c := range changes {
		ev, err := renderChange(c)
		if err != nil {
			return nil, hub.Position{}, err
		}
		data, variants, err := encodeEventData(ev)
		if err != nil {
			return nil, hub.Position{}, err
		}
		off := c.Offset
		if channel != events.ChannelBooks {
			off = c.BookOffset
		}
		out = append(out, hub.Entry{Offset: off, Epoch: c.Epoch, Data: data, Variants: variants})
	}
	return out, hub.Position{Channel: channel, Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

// relayMetrics adapts metrics to relay.Observer.
type relayMetrics struct{ m *metrics.Metrics }

var _ relay.Observer = relayMetrics{}

func (r relayMetrics) Relayed(path string, n int) { r.m.Relayed(path, n) }
func (r relayMetrics) RelayFailed()               { r.m.RelayFailed() }
func (r relayMetrics) Outbox(st store.OutboxStats) {
	s := metrics.OutboxSample{Rows: st.Rows, Unpublished: st.Unpublished}
	if !st.OldestUnpublished.IsZero() {
		s.Lag = time.Since(st.OldestUnpublished)
	}
	r.m.ObserveOutbox(s)
}
