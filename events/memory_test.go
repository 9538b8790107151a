package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
)

func TestMemoryDeliversInOrder(t *testing.T) {
	bus := events.NewMemory()
	t.Cleanup(func() { bus.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var a, b []string
	if err := bus.Subscribe(ctx, func(ev events.Event) { a = append(a, ev.ID) }); err != nil {
		t.Fatal(err)
	}
	if err := bus.Subscribe(ctx, func(ev events.Event) { b = append(b, ev.ID) }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3"} {
		if err := bus.Publish(ctx, events.Event{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a) != 3 || len(b) != 3 || a[2] != "3" || b[0] != "1" {
		t.Fatalf("a=%v b=%v", a, b)
	}
}

func TestMemoryUnsubscribeOnCancel(t *testing.T) {
	bus := events.NewMemory()
	t.Cleanup(func() { bus.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 10)
	if err := bus.Subscribe(ctx, func(events.Event) { got <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	cancel()
	// AfterFunc runs asynchronously: publish until the handler is gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := bus.Publish(context.Background(), events.Event{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			if time.Now().After(deadline) {
				t.Fatal("handler still called after its context was cancelled")
			}
			continue
		default:
		}
		break
	}
}

func TestMemoryClosed(t *testing.T) {
	bus := events.NewMemory()
	bus.Close()
	ctx := context.Background()
	if err := bus.Publish(ctx, events.Event{}); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if err := bus.Subscribe(ctx, func(events.Event) {}); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	if err := bus.Ping(ctx); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Ping after Close = %v", err)
	}
}

func TestChannelsFollowPositions(t *testing.T) {
	ev := events.Event{BookID: 42, Positions: []events.Position{
		{Channel: "books", Offset: 120, Epoch: "e"}, {Channel: "books:42", Offset: 3, Epoch: "e"}}}
	got := ev.Channels()
	if len(got) != 2 || got[0] != "books" || got[1] != "books:42" {
		t.Fatalf("Channels = %v", got)
	}
	if p, ok := ev.Position("books:42"); !ok || p.Offset != 3 {
		t.Errorf("Position(books:42) = %+v, %v", p, ok)
	}
	if _, ok := ev.Position("books:7"); ok {
		t.Error("Position of a channel the event is not on")
	}
}

func TestTypeKnown(t *testing.T) {
	for typ, want := range map[events.Type]bool{
		events.BookCreated: true, events.BookUpdated: true, events.BookDeleted: true,
		"book.hacked": false, "": false, "BOOK.CREATED": false,
	} {
		if got := typ.Known(); got != want {
			t.Errorf("Type(%q).Known() = %v, want %v", typ, got, want)
		}
	}
}
