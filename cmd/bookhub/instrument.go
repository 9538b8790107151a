package main

import (
	"context"
	"errors"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/metrics"
	"github.com/bookhub/bookhub/rest"
	"github.com/bookhub/bookhub/store"
)

// countingPublisher counts what the REST API publishes on the bus.
type countingPublisher struct {
	bus events.Publisher
	m   *metrics.Metrics
}

func (p countingPublisher) Publish(ctx context.Context, ev events.Event) error {
	if err := p.bus.Publish(ctx, ev); err != nil {
		p.m.BusError("publish")
		return err
	}
	p.m.EventPublished()
	return nil
}

// countingStore counts database failures, leaving the answers untouched.
// Outcomes that are part of normal operation (a missing book, a taken ISBN,
// a stale version, a bad cursor, a client that hung up) are not failures.
type countingStore struct {
	s *store.Store
	m *metrics.Metrics
}

var _ rest.BookStore = countingStore{}

func (c countingStore) count(err error) error {
	switch {
	case err == nil,
		errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrConflict),
		errors.Is(err, store.ErrStale),
		errors.Is(err, store.ErrInvalidQuery),
		errors.Is(err, store.ErrInvalidBook),
		errors.Is(err, context.Canceled):
	default:
		c.m.StoreError()
	}
	return err
}

func (c countingStore) Create(ctx context.Context, b store.Book) (store.Book, error) {
	b, err := c.s.Create(ctx, b)
	return b, c.count(err)
}

func (c countingStore) Get(ctx context.Context, id int64) (store.Book, error) {
	b, err := c.s.Get(ctx, id)
	return b, c.count(err)
}

// Update counts only the store's own failures: an error returned by apply
// (a validation failure) passes through uncounted.
func (c countingStore) Update(ctx context.Context, id, ifVersion int64, apply func(*store.Book) error) (store.Book, error) {
	var applyErr error
	b, err := c.s.Update(ctx, id, ifVersion, func(b *store.Book) error {
		applyErr = apply(b)
		return applyErr
	})
	if err != nil && applyErr != nil && errors.Is(err, applyErr) {
		return b, err
	}
	return b, c.count(err)
}

func (c countingStore) Delete(ctx context.Context, id, ifVersion int64) (store.Book, error) {
	b, err := c.s.Delete(ctx, id, ifVersion)
	return b, c.count(err)
}

func (c countingStore) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	p, err := c.s.List(ctx, opts)
	return p, c.count(err)
}

func (c countingStore) Ping(ctx context.Context) error { return c.count(c.s.Ping(ctx)) }

func (c countingStore) Epoch() string { return c.s.Epoch() }
