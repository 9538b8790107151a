package hub

// EncodeEventFrame exposes the frame encoder to the black-box benchmarks.
func EncodeEventFrame(channel string, event []byte) ([]byte, error) {
	body, err := eventBody(event)
	if err != nil {
		return nil, err
	}
	pos := Position{Channel: channel}
	return appendEventFrame(make([]byte, 0, eventFrameLen(pos, body)), channel, pos, body), nil
}

// ParseSubscribe exposes the ?subscribe= parser to the black-box benchmarks.
func (h *Hub) ParseSubscribe(values []string) ([]string, error) { return h.parseSubscribe(values) }

// EncodeSequencedFrame is EncodeEventFrame with an offset and epoch.
func EncodeSequencedFrame(pos Position, event []byte) ([]byte, error) {
	body, err := eventBody(event)
	if err != nil {
		return nil, err
	}
	return appendEventFrame(make([]byte, 0, eventFrameLen(pos, body)), pos.Channel, pos, body), nil
}
