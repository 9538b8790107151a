package hub

import "fmt"

// checkPublication refuses a publication whose Data or any variant is not a
// JSON object, before anything is queued: a subscriber of a broken variant
// must neither get nothing while the others get the event, nor fall back to
// a payload it was not meant to see.
func checkPublication(p Publication) error {
	if _, err := eventBody(p.Data); err != nil {
		return err
	}
	for v, data := range p.Variants {
		if _, err := eventBody(data); err != nil {
			return fmt.Errorf("variant %q: %w", v, err)
		}
	}
	return nil
}

// variantData is the payload of variant: variants[variant] when present,
// else data. The empty variant is always data.
func variantData(data []byte, variants map[string][]byte, variant string) []byte {
	if variant == "" {
		return data
	}
	if d, ok := variants[variant]; ok {
		return d
	}
	return data
}

// frameSet encodes the frames of one publication on one channel, lazily and
// at most once per variant: Publish hands the same frameSet to every
// subscriber, which asks for its own variant. It is used by one Publish
// call only (under the hub's read lock), so it needs no locking.
type frameSet struct {
	hub *Hub
	pub *Publication
	pos Position
	// byName caches the frame of every variant name asked for so far;
	// names without a payload of their own share the Data frame. A slice,
	// not a map: there are a handful of variants, and a short scan of
	// string comparisons is cheaper per subscriber than hashing.
	byName []namedFrame
	data   []byte // the Data frame once encoded
	buf    [4]namedFrame
}

type namedFrame struct {
	variant string
	frame   []byte
}

// frame returns the frame for a connection of variant, encoding it on the
// first request.
func (f *frameSet) frame(variant string) []byte {
	for i := range f.byName {
		if f.byName[i].variant == variant {
			return f.byName[i].frame
		}
	}
	if f.byName == nil {
		f.byName = f.buf[:0]
	}
	var frame []byte
	if d, ok := f.pub.Variants[variant]; ok && variant != "" {
		frame = f.encode(d)
	} else {
		if f.data == nil {
			f.data = f.encode(f.pub.Data)
		}
		frame = f.data
	}
	f.byName = append(f.byName, namedFrame{variant, frame})
	return frame
}

func (f *frameSet) encode(data []byte) []byte {
	body, err := eventBody(data)
	if err != nil {
		body = []byte("}") // unreachable: checkPublication refused it
	}
	f.hub.encodings.Add(1)
	return appendEventFrame(make([]byte, 0, eventFrameLen(f.pos, body)), f.pos.Channel, f.pos, body)
}
