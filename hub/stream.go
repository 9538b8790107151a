package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
)

// Position is a place in one channel's stream. Offsets grow by one per
// event on a channel; they are comparable only within one Epoch.
type Position struct {
	Channel string
	Offset  uint64
	Epoch   string
}

// Publication is one event to deliver: its JSON object, once, and its
// position on each channel it is delivered on.
type Publication struct {
	// Data is the event as a JSON object; the hub frames it per channel.
	Data []byte
	// Variants holds alternative payloads (JSON objects) by variant name:
	// a connection whose Identity.Variant is a key here receives that
	// payload instead of Data. Other connections, and the variant "", get
	// Data. Nil means everyone gets Data.
	Variants map[string][]byte
	// Key groups events that supersede each other (bookhub: the book), for
	// connections that conflate: of several pending events with one key on
	// one channel, only the newest is sent. "" never conflates.
	Key string
	// Positions lists the channels, each with the event's offset there. An
	// offset of 0 means "not sequenced": the frame carries no offset and
	// is never treated as a duplicate.
	Positions []Position
}

// Entry is one event read back from a channel's history.
type Entry struct {
	Offset uint64
	Epoch  string
	Data   []byte
	// Variants are the alternative payloads of the event, with the rule of
	// Publication.Variants; a replay picks by the connection's variant at
	// the time the entry is sent.
	Variants map[string][]byte
}

// History serves the past of a channel, so that a client can resume where
// it left off. The hub calls it from a connection's reader goroutine.
type History interface {
	// Since returns up to limit events of channel with an offset above
	// after, in offset order, and the channel's current position. The
	// entries are contiguous; if the history no longer reaches back to
	// after+1, the first entry's offset is higher.
	Since(ctx context.Context, channel string, after uint64, limit int) ([]Entry, Position, error)
}

// subscription is one channel of one connection. Everything but channel
// is guarded by the connection's mu; channel never changes.
type subscription struct {
	channel string
	// last and epoch are the position of the last sequenced event queued
	// on this subscription; an event at or below it in the same epoch is a
	// duplicate and never sent twice.
	last  uint64
	epoch string
	// replaying is set while history is being replayed: live events are
	// held, then sent after the replay if they are newer than it.
	replaying bool
	held      []heldFrame
}

// admit reports whether an event at offset in epoch is news for s, and if
// so records it as the last one. Offset 0 is not sequenced and always
// news. Offsets are comparable only within one epoch: an event of another
// epoch (the history was reset) starts the comparison over.
func (s *subscription) admit(offset uint64, epoch string) bool {
	switch {
	case offset == 0:
		return true
	case epoch == s.epoch && offset <= s.last:
		return false
	}
	s.last, s.epoch = offset, epoch
	return true
}

type heldFrame struct {
	offset uint64
	epoch  string
	key    string
	frame  []byte
}

// since is a resume request: deliver what followed this position.
type since struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// subscribeResult is the outcome of a subscribe with since, for the
// subscribed frame.
type subscribeResult struct {
	recovered bool
	position  Position
}

// Replays are paced so that they never fill more than half of the send
// queue, whatever the client's speed: the other half stays free for the
// connection's live events and replies.
const maxReplayChunk = 500

// replayPace returns how many entries a replay reads and queues at once,
// and how many frames may be pending before it queues the next chunk.
func replayPace(queue int) (chunk, room int) {
	chunk = max(1, min(queue/4, maxReplayChunk))
	return chunk, max(0, queue/2-chunk)
}

// errConnClosed ends a replay whose connection is going away.
var errConnClosed = errors.New("hub: connection closed during a replay")

// resume replays the history of sub's channel after from, then releases the
// live events held meanwhile. It runs on c's reader goroutine, with sub
// already in the channel index (replaying), so no live event is missed at
// the seam; duplicates are dropped by offset.
//
// The subscription is recovered when the epoch is the channel's, the offset
// is not in the future, the history still reaches back to from+1, and at
// most MaxReplay events are missing. Otherwise it continues live from the
// channel's current position, and the client refetches.
//
// A replay takes as long as the client needs: each history read is bounded
// by HistoryTimeout and each frame by WriteTimeout, not the whole. If the
// history loses entries between two reads (pruned meanwhile), the client
// gets an incomplete frame at the skip rather than a silent gap.
func (h *Hub) resume(c *conn, sub *subscription, from since, id json.RawMessage) (subscribeResult, error) {
	c.beginResume()
	defer c.endResume()
	chunk, room := replayPace(h.opts.SendQueueMessages)
	entries, cur, err := h.readHistory(sub.channel, from.Offset, chunk)
	if err != nil {
		return subscribeResult{}, err
	}
	res := subscribeResult{position: cur}
	res.recovered = from.Epoch == cur.Epoch && from.Offset <= cur.Offset &&
		cur.Offset-from.Offset <= uint64(h.opts.MaxReplay) &&
		(from.Offset == cur.Offset || len(entries) > 0 && entries[0].Offset == from.Offset+1)
	if !res.recovered {
		c.reply(subscribedReply(id, sub.channel, &res))
		return res, c.endReplay(sub, cur, chunk, room)
	}
	res.position = Position{Channel: sub.channel, Offset: from.Offset, Epoch: cur.Epoch}
	c.reply(subscribedReply(id, sub.channel, &res))
	last, replayed := from.Offset, 0
	for last < cur.Offset {
		if !c.waitDrained(room) {
			return res, errConnClosed
		}
		before := last
		for _, e := range entries {
			if e.Offset <= last {
				continue // a history out of order: never send an offset twice
			}
			if e.Offset != last+1 {
				c.enqueue(encodeIncomplete(Position{Channel: sub.channel, Offset: last, Epoch: cur.Epoch}))
			}
			// The reader goroutine is the only one that changes the
			// identity (refresh), so the variant holds for the replay.
			c.enqueueReplay(sub, e, encodeEntry(sub.channel, e, c.ident.Variant))
			last = e.Offset
			replayed++
		}
		if last == before {
			// The history no longer holds the rest of what was missed.
			c.enqueue(encodeIncomplete(Position{Channel: sub.channel, Offset: last, Epoch: cur.Epoch}))
			break
		}
		if last >= cur.Offset {
			break
		}
		if entries, _, err = h.readHistory(sub.channel, last, chunk); err != nil {
			return res, err
		}
	}
	h.obs.Replayed(sub.channel, replayed)
	return res, c.endReplay(sub, Position{Channel: sub.channel, Offset: last, Epoch: cur.Epoch}, chunk, room)
}

// readHistory is one bounded read of History.
func (h *Hub) readHistory(channel string, after uint64, limit int) ([]Entry, Position, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.HistoryTimeout)
	defer cancel()
	return h.opts.History.Since(ctx, channel, after, limit)
}

// encodeEntry frames a history entry for a connection of variant. An
// entry that is not a JSON object is sent as an empty event (its position
// still counts); it never falls back to another variant's payload.
func encodeEntry(channel string, e Entry, variant string) []byte {
	body, err := eventBody(variantData(e.Data, e.Variants, variant))
	if err != nil {
		body = []byte("}")
	}
	return appendEventFrame(nil, channel, Position{Channel: channel, Offset: e.Offset, Epoch: e.Epoch}, body)
}

// parseSince reads ?since= (offsets, comma-separated, one per ?subscribe=
// channel in order) and ?epoch= (one epoch for all of them).
func parseSince(values []string, epoch string, n int) ([]*since, error) {
	if len(values) == 0 {
		return make([]*since, n), nil
	}
	if len(epoch) > maxEpochLen {
		return nil, errBadEpoch
	}
	out := make([]*since, 0, n)
	for _, v := range values {
		for i := 0; i <= len(v) && len(out) <= n; {
			j := i
			for j < len(v) && v[j] != ',' {
				j++
			}
			off, err := strconv.ParseUint(v[i:j], 10, 64)
			if err != nil {
				return nil, errBadSince
			}
			out = append(out, &since{Offset: off, Epoch: epoch})
			i = j + 1
		}
	}
	if len(out) != n {
		return nil, errSinceCount
	}
	return out, nil
}
