package events

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a bus that has been closed.
var ErrClosed = errors.New("events: bus closed")

// Memory is the in-process bus of a single instance (the embedded default).
// Publish calls every handler synchronously, in subscription order, so
// delivery order equals publish order. The zero value is not usable; call
// NewMemory.
type Memory struct {
	mu       sync.RWMutex
	closed   bool
	nextID   int
	handlers map[int]Handler
}

var _ Bus = (*Memory)(nil)

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	return &Memory{handlers: make(map[int]Handler)}
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
	for id := 0; id < m.nextID; id++ {
		if h, ok := m.handlers[id]; ok {
			h(ev)
		}
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
	id := m.nextID
	m.nextID++
	m.handlers[id] = h
	context.AfterFunc(ctx, func() {
		m.mu.Lock()
		delete(m.handlers, id)
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
	clear(m.handlers)
	return nil
}
