package hub

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
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

// historyTimeout bounds one history read of a resume.
const historyTimeout = 5 * time.Second

// subscription is one channel of one connection. last and held are guarded
// by the connection's mu; channel never changes.
type subscription struct {
	channel string
	// last is the offset of the last event queued on this subscription; an
	// event at or below it is a duplicate and never sent twice.
	last uint64
	// replaying is set while history is being replayed: live events are
	// held, then sent after the replay if they are newer than it.
	replaying bool
	held      []heldFrame
}

type heldFrame struct {
	offset uint64
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

// resume replays the history of sub's channel after from, then releases the
// live events held meanwhile. It runs on c's reader goroutine, with sub
// already in the channel index (replaying), so no live event is missed at
// the seam; duplicates are dropped by offset.
//
// The subscription is recovered when the epoch is the channel's, the offset
// is not in the future, the history still reaches back to from+1, and at
// most MaxReplay events are missing. Otherwise it continues live from the
// channel's current position, and the client refetches.
func (h *Hub) resume(c *conn, sub *subscription, from since, id json.RawMessage) (subscribeResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	chunk := max(1, min(h.opts.SendQueueMessages/2, 500))
	entries, cur, err := h.opts.History.Since(ctx, sub.channel, from.Offset, chunk)
	if err != nil {
		return subscribeResult{}, err
	}
	res := subscribeResult{position: cur}
	res.recovered = from.Epoch == cur.Epoch && from.Offset <= cur.Offset &&
		cur.Offset-from.Offset <= uint64(h.opts.MaxReplay) &&
		(from.Offset == cur.Offset || len(entries) > 0 && entries[0].Offset == from.Offset+1)
	if !res.recovered {
		c.reply(subscribedReply(id, sub.channel, &res))
		c.startAt(sub, cur.Offset)
		return res, nil
	}
	res.position = Position{Channel: sub.channel, Offset: from.Offset, Epoch: cur.Epoch}
	c.reply(subscribedReply(id, sub.channel, &res))
	last := from.Offset
	for len(entries) > 0 {
		for _, e := range entries {
			c.enqueueReplay(sub, e.Offset, encodeEntry(sub.channel, e))
			last = e.Offset
		}
		if last >= cur.Offset || len(entries) < chunk {
			break
		}
		if !c.waitDrained(ctx, chunk) {
			return res, ctx.Err()
		}
		if entries, _, err = h.opts.History.Since(ctx, sub.channel, last, chunk); err != nil {
			return res, err
		}
	}
	c.startAt(sub, last)
	h.obs.Replayed(sub.channel, int(last-from.Offset))
	return res, nil
}

func encodeEntry(channel string, e Entry) []byte {
	body, err := eventBody(e.Data)
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
