package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/store"
)

// createN makes n books.
func createN(t testing.TB, s *store.Store, n int) []store.Book {
	t.Helper()
	out := make([]store.Book, n)
	for i := range out {
		out[i] = mustCreate(t, s, store.Book{Title: fmt.Sprintf("Book %d", i), Author: "A"})
	}
	return out
}

func mustPrune(t testing.TB, s *store.Store, maxAge time.Duration, keep uint64) int64 {
	t.Helper()
	n, err := s.Prune(testContext(t), maxAge, keep)
	if err != nil {
		t.Fatalf("Prune(%v, %d): %v", maxAge, keep, err)
	}
	return n
}

func seqsOf(cs []store.Change) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}

// farFuture is an olderThan that every row is older than.
func farFuture() time.Time { return time.Now().AddDate(10, 0, 0) }

// heldClaim starts a ClaimUnpublished on s that stays inside its publish
// callback (holding its rows) until the returned release is called, and
// returns the changes it was handed. The claim marks them all published.
func heldClaim(t *testing.T, s *store.Store, limit int) (claimed []store.Change, release func()) {
	t.Helper()
	ctx := testContext(t)
	entered, released, done := make(chan []store.Change, 1), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := s.ClaimUnpublished(ctx, farFuture(), limit, func(cs []store.Change) []int64 {
			entered <- cs
			select {
			case <-released:
			case <-ctx.Done():
			}
			return seqsOf(cs)
		})
		done <- err
	}()
	var once sync.Once
	release = func() {
		t.Helper()
		once.Do(func() {
			close(released)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("held ClaimUnpublished: %v", err)
				}
			case <-ctx.Done():
				t.Error("held ClaimUnpublished did not return")
			}
		})
	}
	t.Cleanup(release) // before the store closes
	select {
	case claimed = <-entered:
	case err := <-done:
		t.Fatalf("held ClaimUnpublished returned before publishing: %v", err)
	case <-ctx.Done():
		t.Fatal("held ClaimUnpublished never called publish")
	}
	return claimed, release
}

func TestClaimUnpublished(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			t.Run("OnlyOlderAndUnpublished", func(t *testing.T) {
				s := openStore(t, d.url(t))
				clk := newTestClock(s)
				t0 := clk.Now()
				createN(t, s, 2) // offsets 1, 2 at t0
				clk.Set(t0.Add(time.Hour))
				createN(t, s, 1) // offset 3 at t0+1h

				if got := claimBefore(t, s, t0, 100, nil); len(got) != 0 {
					t.Errorf("olderThan = the commit time claimed %v, want nothing (strictly older)", booksOffsets(got))
				}
				cut := t0.Add(time.Minute)
				// Publish takes only offset 1: 2 stays unpublished.
				if got := claimBefore(t, s, cut, 100, func(c store.Change) bool { return c.Offset == 1 }); !slices.Equal(booksOffsets(got), []uint64{1, 2}) {
					t.Errorf("first claim got %v, want [1 2]", booksOffsets(got))
				}
				if got := claimBefore(t, s, cut, 100, nil); !slices.Equal(booksOffsets(got), []uint64{2}) {
					t.Errorf("second claim got %v, want [2]: only the row publish did not return", booksOffsets(got))
				}
				if got := claimBefore(t, s, cut, 100, nil); len(got) != 0 {
					t.Errorf("third claim got %v, want nothing", booksOffsets(got))
				}
				if got := claimBefore(t, s, t0.Add(2*time.Hour), 100, nil); !slices.Equal(booksOffsets(got), []uint64{3}) {
					t.Errorf("claim past the young row got %v, want [3]", booksOffsets(got))
				}
				if st := mustStats(t, s); st.Unpublished != 0 || st.Rows != 3 {
					t.Errorf("stats %+v, want 3 rows, all published", st)
				}
			})

			t.Run("LimitInOffsetOrder", func(t *testing.T) {
				s := openStore(t, d.url(t))
				createN(t, s, 5)
				for _, want := range [][]uint64{{1, 2}, {3, 4}, {5}, nil} {
					if got := claimBefore(t, s, farFuture(), 2, nil); !slices.Equal(booksOffsets(got), want) {
						t.Errorf("claim got %v, want %v", booksOffsets(got), want)
					}
				}
			})

			t.Run("UnreturnedStayUnpublished", func(t *testing.T) {
				s := openStore(t, d.url(t))
				createN(t, s, 3)
				claim(t, s, func(store.Change) bool { return false })
				if st := mustStats(t, s); st.Unpublished != 3 {
					t.Errorf("%d unpublished after a claim that published nothing, want 3", st.Unpublished)
				}
				if got := claim(t, s, nil); len(got) != 3 {
					t.Errorf("next claim got %v, want all three again", booksOffsets(got))
				}
			})

			t.Run("AnyTimeZone", func(t *testing.T) {
				s := openStore(t, d.url(t))
				createN(t, s, 2)
				east, west := time.FixedZone("UTC+7", 7*3600), time.FixedZone("UTC-7", -7*3600)
				if got := claimBefore(t, s, time.Now().Add(-time.Hour).In(east), 100, nil); len(got) != 0 {
					t.Errorf("olderThan an hour ago (UTC+7) claimed %v, want nothing", booksOffsets(got))
				}
				if got := claimBefore(t, s, time.Now().Add(time.Hour).In(west), 100, nil); len(got) != 2 {
					t.Errorf("olderThan in an hour (UTC-7) claimed %v, want both rows", booksOffsets(got))
				}
			})

			t.Run("ConcurrentClaimsAreDisjoint", func(t *testing.T) {
				if d.driver == store.DriverSQLite {
					t.Skip("SQLite claims hold the database's write lock, so claims never overlap")
				}
				u := d.url(t)
				a, b := openStore(t, u), openStore(t, u)
				createN(t, a, 6)
				fromA, release := heldClaim(t, a, 3)
				fromB := claim(t, b, nil) // while a holds its rows
				release()
				if got := booksOffsets(fromA); !slices.Equal(got, []uint64{1, 2, 3}) {
					t.Errorf("first claim got %v, want [1 2 3]", got)
				}
				if got := booksOffsets(fromB); !slices.Equal(got, []uint64{4, 5, 6}) {
					t.Errorf("concurrent claim got %v, want [4 5 6]: the rows the first did not hold", got)
				}
				if got := claim(t, b, nil); len(got) != 0 {
					t.Errorf("claim after both got %v, want nothing", booksOffsets(got))
				}
			})

			t.Run("WritesDoNotWaitForAClaim", func(t *testing.T) {
				if d.driver == store.DriverSQLite {
					t.Skip("SQLite runs one transaction at a time: a write always waits for a claim to end")
				}
				u := d.url(t)
				sweeper, writer := openStore(t, u), openStore(t, u)
				books := createN(t, writer, 3)
				held, release := heldClaim(t, sweeper, 100)
				if len(held) != 3 {
					t.Fatalf("held claim got %v, want all three rows", booksOffsets(held))
				}
				// A sweep publishing (say, to a Redis that times out) must
				// not stall every write: the writers would queue behind it
				// while holding the books stream's lock.
				ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
				defer cancel()
				if _, err := writer.Create(ctx, store.Book{Title: "During the sweep", Author: "W"}); err != nil {
					t.Errorf("Create during a claim: %v", err)
				}
				if _, err := writer.Update(ctx, books[0].ID, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
					t.Errorf("Update during a claim: %v", err)
				}
				if got := claim(t, writer, nil); !slices.Equal(booksOffsets(got), []uint64{4, 5}) {
					t.Errorf("claim beside the held one got %v, want the two new rows [4 5]", booksOffsets(got))
				}
				release()
				if st := mustStats(t, writer); st.Unpublished != 0 {
					t.Errorf("%d rows unpublished after both claims", st.Unpublished)
				}
			})
		})
	}
}

func TestPrune(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			// setup opens a fresh store with a test clock.
			setup := func(t *testing.T) (*store.Store, *testClock) {
				s := openStore(t, d.url(t))
				return s, newTestClock(s)
			}
			later := func(clk *testClock) { clk.Set(clk.Now().Add(48 * time.Hour)) }

			t.Run("NeverDeletesUnpublished", func(t *testing.T) {
				s, clk := setup(t)
				createN(t, s, 4)
				later(clk)
				if n := mustPrune(t, s, time.Hour, 0); n != 0 {
					t.Errorf("pruned %d unpublished rows", n)
				}
				if got, _ := fullHistory(t, s, events.ChannelBooks, 0); len(got) != 4 {
					t.Errorf("history has %d rows, want 4", len(got))
				}
			})

			t.Run("KeepsHistorySize", func(t *testing.T) {
				s, clk := setup(t)
				createN(t, s, 5)
				claim(t, s, nil)
				later(clk)
				if n := mustPrune(t, s, time.Hour, 2); n != 3 {
					t.Errorf("pruned %d rows keeping 2 of 5, want 3", n)
				}
				if got, _ := fullHistory(t, s, events.ChannelBooks, 0); !slices.Equal(booksOffsets(got), []uint64{4, 5}) {
					t.Errorf("history %v, want [4 5]", booksOffsets(got))
				}
				if n := mustPrune(t, s, time.Hour, 2); n != 0 {
					t.Errorf("second prune deleted %d rows, want 0", n)
				}
				if n := mustPrune(t, s, time.Hour, 10); n != 0 {
					t.Errorf("prune keeping more than the head deleted %d rows", n)
				}
			})

			t.Run("KeepsYoungerThanMaxAge", func(t *testing.T) {
				s, clk := setup(t)
				t0 := clk.Now()
				createN(t, s, 3)
				clk.Set(t0.Add(2 * time.Hour))
				createN(t, s, 2)
				claim(t, s, nil)
				clk.Set(t0.Add(2*time.Hour + time.Minute))
				if n := mustPrune(t, s, time.Hour, 0); n != 3 {
					t.Errorf("pruned %d rows, want the 3 older than an hour", n)
				}
				if got, _ := fullHistory(t, s, events.ChannelBooks, 0); !slices.Equal(booksOffsets(got), []uint64{4, 5}) {
					t.Errorf("history %v, want [4 5]", booksOffsets(got))
				}
			})

			// History must stay contiguous from its first row: a row that
			// is kept keeps every later one.
			t.Run("StopsAtAnUnpublishedRow", func(t *testing.T) {
				s, clk := setup(t)
				createN(t, s, 5)
				claim(t, s, func(c store.Change) bool { return c.Offset != 2 })
				later(clk)
				if n := mustPrune(t, s, time.Hour, 0); n != 1 {
					t.Errorf("pruned %d rows, want 1 (only the row before the unpublished one)", n)
				}
				got, pos := fullHistory(t, s, events.ChannelBooks, 0)
				if want := seq(2, pos.Offset); !slices.Equal(booksOffsets(got), want) {
					t.Errorf("history %v, want contiguous %v", booksOffsets(got), want)
				}
			})

			t.Run("StopsAtAYoungRow", func(t *testing.T) {
				// Offsets follow commits, commit times need not: instances'
				// clocks differ, and a create takes its time before it
				// waits for the stream's lock.
				s, clk := setup(t)
				t0 := clk.Now()
				clk.Set(t0.Add(10 * time.Minute))
				createN(t, s, 1) // offset 1, stamped by a clock ahead
				clk.Set(t0)
				createN(t, s, 2) // offsets 2, 3
				claim(t, s, nil)
				clk.Set(t0.Add(30 * time.Minute))
				if n := mustPrune(t, s, 25*time.Minute, 0); n != 0 {
					t.Errorf("pruned %d rows behind a row younger than maxAge", n)
				}
				got, _ := fullHistory(t, s, events.ChannelBooks, 0)
				if !slices.Equal(booksOffsets(got), []uint64{1, 2, 3}) {
					t.Errorf("history %v, want [1 2 3]", booksOffsets(got))
				}
			})

			t.Run("InBatches", func(t *testing.T) {
				tests := []struct {
					name          string
					rows, keep    int
					batch         int
					unpublished   uint64 // offset left unpublished, 0 for none
					wantPruned    int64
					wantFirstLeft uint64
				}{
					{"PartialLastBatch", 23, 2, 5, 0, 21, 22},
					{"ExactBatches", 20, 0, 5, 0, 20, 0},
					{"StopsInsideABatch", 20, 0, 5, 13, 12, 13},
					{"OneRowBatches", 6, 1, 1, 0, 5, 6},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						s, clk := setup(t)
						createN(t, s, tt.rows)
						claim(t, s, func(c store.Change) bool { return c.Offset != tt.unpublished })
						later(clk)
						n, err := s.PruneInBatches(testContext(t), time.Hour, uint64(tt.keep), tt.batch)
						if err != nil || n != tt.wantPruned {
							t.Fatalf("Prune = %d, %v; want %d rows deleted", n, err, tt.wantPruned)
						}
						got, pos := fullHistory(t, s, events.ChannelBooks, 0)
						var want []uint64
						if tt.wantFirstLeft != 0 {
							want = seq(tt.wantFirstLeft, pos.Offset)
						}
						if !slices.Equal(booksOffsets(got), want) {
							t.Errorf("history %v, want %v", booksOffsets(got), want)
						}
					})
				}
			})
		})
	}
}

func TestOutboxStats(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		if st := mustStats(t, s); st != (store.OutboxStats{}) {
			t.Errorf("empty outbox: %+v, want zero", st)
		}
		clk := newTestClock(s)
		t0 := clk.Now()
		for i := range 3 {
			clk.Set(t0.Add(time.Duration(i) * time.Second))
			createN(t, s, 1)
		}
		steps := []struct {
			name    string
			publish int // rows the step publishes first
			want    store.OutboxStats
		}{
			{"AllUnpublished", 0, store.OutboxStats{Rows: 3, Unpublished: 3, OldestUnpublished: t0}},
			{"OldestPublished", 1, store.OutboxStats{Rows: 3, Unpublished: 2, OldestUnpublished: t0.Add(time.Second)}},
			{"AllPublished", 2, store.OutboxStats{Rows: 3}},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				if st.publish > 0 {
					claimBefore(t, s, farFuture(), st.publish, nil)
				}
				got := mustStats(t, s)
				if got.Rows != st.want.Rows || got.Unpublished != st.want.Unpublished || !got.OldestUnpublished.Equal(st.want.OldestUnpublished) {
					t.Errorf("stats %+v, want %+v", got, st.want)
				}
			})
		}
	})
}

func TestListPosition(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			t.Run("MatchesLastWrite", func(t *testing.T) {
				s := openStore(t, d.url(t))
				ctx := testContext(t)
				list := func() store.Page {
					t.Helper()
					p, err := s.List(ctx, store.ListOptions{})
					if err != nil {
						t.Fatalf("List: %v", err)
					}
					return p
				}
				if p := list(); p.Position != (store.Position{Epoch: s.Epoch()}) || len(p.Books) != 0 {
					t.Errorf("empty: %d books at %+v, want none at offset 0", len(p.Books), p.Position)
				}
				books := createN(t, s, 3)
				if _, err := s.Update(ctx, books[0].ID, 0, func(b *store.Book) error { b.Stock = 9; return nil }); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Delete(ctx, books[1].ID, 0); err != nil {
					t.Fatal(err)
				}
				p := list()
				if p.Position != (store.Position{Offset: 5, Epoch: s.Epoch()}) {
					t.Errorf("position %+v after 5 writes, want offset 5, epoch %q", p.Position, s.Epoch())
				}
				if len(p.Books) != 2 || p.Books[0].Stock != 9 {
					t.Errorf("page %+v, want the two remaining books with the update", p.Books)
				}
			})

			t.Run("ConsistentWithPage", func(t *testing.T) {
				// Only creates, fewer than a page: a page at offset N holds
				// exactly N books, if the page and the position are read in
				// one snapshot while another instance writes.
				const creates = 60
				u := d.url(t)
				reader, writer := openStore(t, u), openStore(t, u)
				ctx := testContext(t)
				done := make(chan struct{})
				go func() {
					defer close(done)
					for i := range creates {
						if _, err := writer.Create(ctx, store.Book{Title: fmt.Sprintf("C%d", i), Author: "A"}); err != nil {
							t.Errorf("Create: %v", err)
							return
						}
					}
				}()
				reads := 0
				for finished := false; !finished; reads++ {
					select {
					case <-done:
						finished = true // one last read, after every write
					default:
					}
					p, err := reader.List(ctx, store.ListOptions{Limit: store.MaxLimit})
					if err != nil {
						t.Fatalf("List: %v", err)
					}
					if uint64(len(p.Books)) != p.Position.Offset {
						t.Fatalf("page of %d books reports position %d", len(p.Books), p.Position.Offset)
					}
					if finished && p.Position.Offset != creates {
						t.Errorf("final position %d, want %d", p.Position.Offset, creates)
					}
				}
				t.Logf("%d consistent reads during %d writes", reads, creates)
			})
		})
	}
}

func TestEpoch(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			first, err := store.Open(ctx, store.Options{URL: u, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			epoch := first.Epoch()
			mustCreate(t, first, store.Book{Title: "T", Author: "A"})
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if epoch == "" {
				t.Fatal("empty epoch")
			}
			again := openStore(t, u)
			if got := again.Epoch(); got != epoch {
				t.Errorf("epoch after reopen %q, want %q", got, epoch)
			}
			if _, pos := fullHistory(t, again, events.ChannelBooks, 0); pos.Epoch != epoch {
				t.Errorf("history position epoch %q, want %q", pos.Epoch, epoch)
			}
			if other := openStore(t, d.url(t)); other.Epoch() == epoch {
				t.Errorf("two fresh databases share epoch %q", epoch)
			}
		})
	}
}
