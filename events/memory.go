package events

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrClosed is returned by a bus that has been closed.
var ErrClosed = errors.New("events: bus closed")

// Memory is the in-process bus of a single instance (the embedded default).
// Publish calls every handler synchronously, in subscription order, so
// delivery order equals publish order. The zero value is not usable; call
// NewMemory.
type Memory struct {
	mu     sync.RWMutex
	closed bool
	// subs is in subscription order; each entry is a pointer so that
	// unsubscribing can find its own even when handlers compare equal.
	subs []*Handler
}

var _ Bus = (*Memory)(nil)

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	return &Memory{}
}

// Publish delivers ev to every current handler before returning.
func (m *Memory) Publish(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	for _, h := range m.subs {
		(*h)(ev)
	}
	return nil
}

// Subscribe registers h until ctx is done or the bus is closed.
func (m *Memory) Subscribe(ctx context.Context, h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	entry := &h
	m.subs = append(m.subs, entry)
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		m.subs = slices.DeleteFunc(m.subs, func(e *Handler) bool { return e == entry })
		m.mu.Unlock()
	})
	return nil
}

// Ping always succeeds unless the bus is closed.
func (m *Memory) Ping(context.Context) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close drops every handler.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.subs = nil
	return nil
}
