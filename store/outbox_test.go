package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/events"
	"github.com/bookhub/bookhub/store"
)

// changeLog collects the changes a store hands to Options.OnCommit.
type changeLog struct {
	mu      sync.Mutex
	changes []store.Change
}

func (l *changeLog) add(c store.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, c)
}

func (l *changeLog) all() []store.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// testClock is a store clock the test moves by hand; safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(s *store.Store) *testClock {
	c := &testClock{now: time.Now().UTC().Truncate(time.Microsecond)}
	s.SetClock(c.Now)
	return c
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC().Truncate(time.Microsecond)
}

// openWith opens rawURL with opts (URL and Logger filled in) until t ends.
func openWith(t testing.TB, rawURL string, opts store.Options) *store.Store {
	t.Helper()
	opts.URL, opts.Logger = rawURL, testLogger(t)
	s, err := store.Open(testContext(t), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// fullHistory returns every change on channel after after, and the
// channel's position.
func fullHistory(t testing.TB, s *store.Store, channel string, after uint64) ([]store.Change, store.Position) {
	t.Helper()
	changes, pos, err := s.History(testContext(t), channel, after, 100000)
	if err != nil {
		t.Fatalf("History(%q, %d): %v", channel, after, err)
	}
	return changes, pos
}

// booksOffsets and bookOffsets list the changes' positions on "books" and
// on their book's channel.
func booksOffsets(cs []store.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Offset
	}
	return out
}

func bookOffsets(cs []store.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.BookOffset
	}
	return out
}

// seq returns from, from+1, ..., to.
func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// claim runs one ClaimUnpublished taking every unpublished row, publishing
// (marking) the changes keep accepts (nil: all), and returns every change it
// was handed.
func claim(t testing.TB, s *store.Store, keep func(store.Change) bool) []store.Change {
	t.Helper()
	return claimBefore(t, s, time.Now().AddDate(10, 0, 0), 100000, keep)
}

// claimBefore is claim for rows committed before olderThan, at most limit.
func claimBefore(t testing.TB, s *store.Store, olderThan time.Time, limit int, keep func(store.Change) bool) []store.Change {
	t.Helper()
	var got []store.Change
	n, err := s.ClaimUnpublished(testContext(t), olderThan, limit, func(cs []store.Change) []int64 {
		got = append(got, cs...)
		var seqs []int64
		for _, c := range cs {
			if keep == nil || keep(c) {
				seqs = append(seqs, c.Seq)
			}
		}
		return seqs
	})
	if err != nil {
		t.Fatalf("ClaimUnpublished: %v", err)
	}
	if n != len(got) {
		t.Errorf("ClaimUnpublished returned %d, handed publish %d changes", n, len(got))
	}
	return got
}

func mustPosition(t testing.TB, s *store.Store, channel string) store.Position {
	t.Helper()
	pos, err := s.CurrentPosition(testContext(t), channel)
	if err != nil {
		t.Fatalf("CurrentPosition(%q): %v", channel, err)
	}
	return pos
}

func mustStats(t testing.TB, s *store.Store) store.OutboxStats {
	t.Helper()
	st, err := s.OutboxStats(testContext(t))
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return st
}

func TestWritesAppendOneChange(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			other := openStore(t, u) // another instance: sees only what is committed
			var (
				log     changeLog
				visible []uint64 // "books" offset the other instance saw in each OnCommit
			)
			s := openWith(t, u, store.Options{Origin: "instance-a", OnCommit: func(c store.Change) {
				pos, err := other.CurrentPosition(ctx, events.ChannelBooks)
				if err != nil {
					t.Errorf("CurrentPosition in OnCommit: %v", err)
				}
				visible = append(visible, pos.Offset) // writes below are sequential
				log.add(c)
			}})

			// check verifies that the write just made appended exactly
			// want, and that OnCommit saw it committed.
			check := func(t *testing.T, want store.Change) {
				t.Helper()
				all := log.all()
				if len(all) != int(want.Offset) {
					t.Fatalf("OnCommit called %d times after %d writes", len(all), want.Offset)
				}
				got := all[len(all)-1]
				if got.Seq <= 0 || got.EventID == "" {
					t.Errorf("Seq = %d, EventID = %q: want both set", got.Seq, got.EventID)
				}
				want.Seq, want.EventID = got.Seq, got.EventID
				want.Origin, want.Epoch = "instance-a", s.Epoch()
				if got != want {
					t.Errorf("change\n got %+v\nwant %+v", got, want)
				}
				if v := visible[len(visible)-1]; v < got.Offset {
					t.Errorf("OnCommit ran before commit: another instance saw offset %d, change has %d", v, got.Offset)
				}
				hist, pos := fullHistory(t, other, events.ChannelBooks, got.Offset-1)
				if len(hist) != 1 || hist[0] != got {
					t.Errorf("History after %d = %+v, want just %+v", got.Offset-1, hist, got)
				}
				if pos.Offset != got.Offset {
					t.Errorf("position of books = %d, want %d", pos.Offset, got.Offset)
				}
			}

			b := mustCreate(t, s, store.Book{Title: "Dune", Author: "Frank Herbert", ISBN: "9780441013593", PriceCents: 999})
			t.Run("Create", func(t *testing.T) {
				check(t, store.Change{Type: events.BookCreated, Book: b, At: b.UpdatedAt, Offset: 1, BookOffset: 1})
			})
			b2, err := s.Update(ctx, b.ID, 1, func(b *store.Book) error { b.Stock = 5; return nil })
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			t.Run("Update", func(t *testing.T) {
				check(t, store.Change{Type: events.BookUpdated, Book: b2, At: b2.UpdatedAt, Offset: 2, BookOffset: 2})
			})
			before := time.Now().UTC().Truncate(time.Microsecond)
			gone, err := s.Delete(ctx, b.ID, 2)
			after := time.Now().UTC()
			if err != nil {
				t.Fatalf("Delete: %v", err)
			}
			t.Run("Delete", func(t *testing.T) {
				if gone != b2 {
					t.Errorf("Delete returned %+v, want %+v", gone, b2)
				}
				all := log.all()
				at := all[len(all)-1].At
				if at.Before(before) || at.After(after) || at.Before(b2.UpdatedAt) {
					t.Errorf("delete At = %v, want the deletion time, in [%v, %v]", at, before, after)
				}
				// The book as it was, one past its last version.
				check(t, store.Change{Type: events.BookDeleted, Book: b2, At: at, Offset: 3, BookOffset: 3})
			})

			t.Run("FailedWritesAppendNothing", func(t *testing.T) {
				live := mustCreate(t, s, store.Book{Title: "Live", Author: "A", ISBN: "9780306406157"})
				taken := mustCreate(t, s, store.Book{Title: "Taken", Author: "B", ISBN: "9780131103627"})
				errApply := errors.New("apply refused")
				noop := func(*store.Book) error { return nil }
				tests := []struct {
					name  string
					write func() error
					want  error
				}{
					{"CreateErrConflict", func() error {
						_, err := s.Create(ctx, store.Book{Title: "Dup", Author: "C", ISBN: live.ISBN})
						return err
					}, store.ErrConflict},
					{"UpdateErrConflict", func() error {
						_, err := s.Update(ctx, live.ID, 0, func(b *store.Book) error { b.ISBN = taken.ISBN; return nil })
						return err
					}, store.ErrConflict},
					{"UpdateErrStale", func() error { _, err := s.Update(ctx, live.ID, 99, noop); return err }, store.ErrStale},
					{"UpdateErrNotFound", func() error { _, err := s.Update(ctx, b.ID, 0, noop); return err }, store.ErrNotFound},
					{"UpdateApplyError", func() error {
						_, err := s.Update(ctx, live.ID, 0, func(*store.Book) error { return errApply })
						return err
					}, errApply},
					{"DeleteErrStale", func() error { _, err := s.Delete(ctx, live.ID, 99); return err }, store.ErrStale},
					{"DeleteErrNotFound", func() error { _, err := s.Delete(ctx, b.ID, 0); return err }, store.ErrNotFound},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						n, pos := len(log.all()), mustPosition(t, s, events.ChannelBooks)
						if err := tt.write(); !errors.Is(err, tt.want) {
							t.Fatalf("err = %v, want %v", err, tt.want)
						}
						if got := len(log.all()); got != n {
							t.Errorf("OnCommit called %d times for a failed write", got-n)
						}
						if got := mustPosition(t, s, events.ChannelBooks); got != pos {
							t.Errorf("position moved from %+v to %+v", pos, got)
						}
					})
				}
				// No offset was consumed: the next write takes the next one.
				next := mustCreate(t, s, store.Book{Title: "Next", Author: "D"})
				check(t, store.Change{Type: events.BookCreated, Book: next, At: next.UpdatedAt, Offset: 6, BookOffset: 1})
				if got := mustStats(t, s).Rows; got != 6 {
					t.Errorf("outbox has %d rows after 6 successful writes", got)
				}
			})
		})
	}
}

// TestConcurrentInstancesOffsetsGapFree runs several instances (stores on
// one database) writing at once: "books" must still count 1..N in commit
// order, and every book's channel its versions.
func TestConcurrentInstancesOffsetsGapFree(t *testing.T) {
	const (
		instances  = 4
		writesEach = 50
		seedBooks  = 3
	)
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			ctx := testContext(t)
			u := d.url(t)
			logs := make([]changeLog, instances)
			stores := make([]*store.Store, instances)
			for i := range stores {
				stores[i] = openWith(t, u, store.Options{Origin: fmt.Sprintf("instance-%d", i), OnCommit: logs[i].add})
			}
			var seeds []store.Book
			for i := range seedBooks {
				seeds = append(seeds, mustCreate(t, stores[i%instances], store.Book{Title: fmt.Sprintf("Seed %d", i), Author: "S"}))
			}
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Go(func() {
					for j := range writesEach {
						var err error
						if j%10 == 9 {
							_, err = s.Create(ctx, store.Book{Title: fmt.Sprintf("New %d-%d", i, j), Author: "N"})
						} else {
							_, err = s.Update(ctx, seeds[(i+j)%seedBooks].ID, 0, func(b *store.Book) error { b.Stock++; return nil })
						}
						if err != nil {
							t.Errorf("instance %d, write %d: %v", i, j, err)
							return
						}
					}
				})
			}
			wg.Wait()
			for i, b := range seeds {
				wg.Go(func() {
					if _, err := stores[(i+1)%instances].Delete(ctx, b.ID, 0); err != nil {
						t.Errorf("Delete(%d): %v", b.ID, err)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}

			const total = seedBooks + instances*writesEach + seedBooks
			all, pos := fullHistory(t, stores[0], events.ChannelBooks, 0)
			if pos.Offset != total {
				t.Errorf("position of books = %d after %d writes", pos.Offset, total)
			}
			if got := booksOffsets(all); !slices.Equal(got, seq(1, total)) {
				t.Fatalf("books offsets = %v, want 1..%d without gap or duplicate", got, total)
			}

			// One instance's writes are sequential: each commits before the
			// next begins, so its changes must have increasing offsets.
			handed := 0
			for i := range logs {
				cs := logs[i].all()
				handed += len(cs)
				for k, c := range cs {
					if c.Origin != fmt.Sprintf("instance-%d", i) {
						t.Errorf("instance %d handed a change from %q", i, c.Origin)
					}
					if c != all[c.Offset-1] {
						t.Errorf("OnCommit got %+v, history has %+v", c, all[c.Offset-1])
					}
					if k > 0 && c.Offset <= cs[k-1].Offset {
						t.Errorf("instance %d: write %d got offset %d after offset %d: not commit order", i, k, c.Offset, cs[k-1].Offset)
					}
				}
			}
			if handed != total {
				t.Errorf("OnCommit saw %d changes, want %d", handed, total)
			}

			byBook := make(map[int64][]store.Change)
			for _, c := range all {
				byBook[c.Book.ID] = append(byBook[c.Book.ID], c)
			}
			for id, cs := range byBook {
				if got := bookOffsets(cs); !slices.Equal(got, seq(1, uint64(len(cs)))) {
					t.Errorf("book %d: book offsets in commit order = %v, want 1..%d", id, got, len(cs))
				}
				for k, c := range cs {
					switch {
					case c.Type == events.BookDeleted && k != len(cs)-1:
						t.Errorf("book %d: delete at offset %d is not its last change", id, c.BookOffset)
					case c.Type == events.BookDeleted && c.BookOffset != uint64(c.Book.Version)+1:
						t.Errorf("book %d: delete has book offset %d, version %d", id, c.BookOffset, c.Book.Version)
					case c.Type != events.BookDeleted && c.BookOffset != uint64(c.Book.Version):
						t.Errorf("book %d: %s has book offset %d, version %d", id, c.Type, c.BookOffset, c.Book.Version)
					}
				}
				hist, bpos := fullHistory(t, stores[3], events.BookChannel(id), 0)
				if !slices.Equal(hist, cs) {
					t.Errorf("book %d: its channel's history differs from its changes on books", id)
				}
				if bpos.Offset != uint64(len(cs)) {
					t.Errorf("book %d: position %d, want %d", id, bpos.Offset, len(cs))
				}
			}
			for _, b := range seeds {
				cs := byBook[b.ID]
				// No lost update: the delete saw every increment.
				if last := cs[len(cs)-1]; last.Book.Stock != int64(len(cs)-2) {
					t.Errorf("book %d: stock %d after %d updates", b.ID, last.Book.Stock, len(cs)-2)
				}
			}
		})
	}
}

// TestOverlappingWritesCommitOutOfIDOrder is the trap of issue 7: ids are
// allocated before commit, so a transaction can take the lower id and commit
// after another. A relay that publishes "every row with id > the last one
// seen" would skip it; positions and publication must follow commits.
func TestOverlappingWritesCommitOutOfIDOrder(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			if d.driver == store.DriverSQLite {
				t.Skip("SQLite runs one write transaction at a time (BEGIN IMMEDIATE), so a second write cannot start, let alone commit, while the first is open")
			}
			ctx := testContext(t)
			u := d.url(t)
			slow := openStore(t, u)
			fast := openStore(t, u)
			blocked, release := make(chan store.Book, 1), make(chan struct{})
			slow.SetBeforeAppend(func(b store.Book) {
				blocked <- b
				select {
				case <-release:
				case <-ctx.Done():
				}
			})
			var slowErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, slowErr = slow.Create(ctx, store.Book{Title: "Commits second", Author: "A"})
			}()
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(func() { unblock(); <-done }) // before the stores close

			var early store.Book
			select {
			case early = <-blocked:
			case <-ctx.Done():
				t.Fatal("the first transaction never reached its outbox append")
			}
			late := mustCreate(t, fast, store.Book{Title: "Commits first", Author: "B"})
			if early.ID >= late.ID {
				t.Fatalf("book ids %d (open transaction) and %d (committed): the open one should hold the lower id", early.ID, late.ID)
			}
			if got := mustPosition(t, fast, events.ChannelBooks).Offset; got != 1 {
				t.Errorf("position with one commit = %d, want 1", got)
			}

			// A sweep while the first transaction is still open sees only
			// the committed change, and a reader with a "last id" cursor
			// would now stand past the open transaction's book id.
			first := claim(t, fast, nil)
			if len(first) != 1 || first[0].Book.ID != late.ID || first[0].Offset != 1 {
				t.Fatalf("sweep during the open transaction got %+v, want only book %d at offset 1", first, late.ID)
			}

			unblock()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("the first transaction never finished")
			}
			if slowErr != nil {
				t.Fatalf("Create in the open transaction: %v", slowErr)
			}
			second := claim(t, fast, nil)
			if len(second) != 1 || second[0].Book.ID != early.ID || second[0].Offset != 2 {
				t.Fatalf("sweep after the late commit got %+v, want book %d at offset 2", second, early.ID)
			}
			hist, _ := fullHistory(t, fast, events.ChannelBooks, 0)
			if len(hist) != 2 || hist[0].Book.ID != late.ID || hist[1].Book.ID != early.ID {
				t.Errorf("history %+v: want book %d then book %d, in commit order", hist, late.ID, early.ID)
			}
			if st := mustStats(t, fast); st.Unpublished != 0 {
				t.Errorf("%d rows left unpublished", st.Unpublished)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		a := mustCreate(t, s, store.Book{Title: "A", Author: "X"}) // books 1, a 1
		b := mustCreate(t, s, store.Book{Title: "B", Author: "X"}) // books 2, b 1
		c := mustCreate(t, s, store.Book{Title: "C", Author: "X"}) // books 3, c 1
		for range 2 {                                              // books 4, 5, a 2, 3
			if _, err := s.Update(ctx, a.ID, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Update(ctx, b.ID, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil { // books 6, b 2
			t.Fatal(err)
		}
		if _, err := s.Delete(ctx, c.ID, 0); err != nil { // books 7, c 2
			t.Fatal(err)
		}
		chA, chB, chC := events.BookChannel(a.ID), events.BookChannel(b.ID), events.BookChannel(c.ID)

		tests := []struct {
			name        string
			channel     string
			after       uint64
			limit       int
			wantBooks   []uint64 // offsets on "books"
			wantBook    []uint64 // offsets on the book's channel, for book channels
			wantCurrent uint64
		}{
			{"BooksAll", events.ChannelBooks, 0, 100, seq(1, 7), nil, 7},
			{"BooksAfter", events.ChannelBooks, 2, 100, seq(3, 7), nil, 7},
			{"BooksLimit", events.ChannelBooks, 2, 3, seq(3, 5), nil, 7},
			{"BooksAtHead", events.ChannelBooks, 7, 100, nil, nil, 7},
			{"BooksPastHead", events.ChannelBooks, 100, 100, nil, nil, 7},
			{"BookAll", chA, 0, 100, []uint64{1, 4, 5}, []uint64{1, 2, 3}, 3},
			{"BookAfterLimit", chA, 1, 1, []uint64{4}, []uint64{2}, 3},
			{"BookAtHead", chA, 3, 100, nil, nil, 3},
			{"OtherBook", chB, 0, 100, []uint64{2, 6}, []uint64{1, 2}, 2},
			{"DeletedBook", chC, 0, 100, []uint64{3, 7}, []uint64{1, 2}, 2},
			{"UnknownBook", events.BookChannel(999999), 0, 100, nil, nil, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, pos, err := s.History(ctx, tt.channel, tt.after, tt.limit)
				if err != nil {
					t.Fatalf("History: %v", err)
				}
				if pos.Offset != tt.wantCurrent || pos.Epoch != s.Epoch() {
					t.Errorf("position = %+v, want offset %d, epoch %q", pos, tt.wantCurrent, s.Epoch())
				}
				if o := booksOffsets(got); !slices.Equal(o, tt.wantBooks) {
					t.Errorf("books offsets = %v, want %v", o, tt.wantBooks)
				}
				if tt.wantBook != nil {
					if o := bookOffsets(got); !slices.Equal(o, tt.wantBook) {
						t.Errorf("book offsets = %v, want %v", o, tt.wantBook)
					}
				}
				for _, c := range got {
					if c.Epoch != s.Epoch() {
						t.Errorf("change %d has epoch %q, want %q", c.Offset, c.Epoch, s.Epoch())
					}
				}
			})
		}

		t.Run("ErrInvalidQuery", func(t *testing.T) {
			for _, tc := range []struct {
				channel string
				limit   int
			}{{"authors", 10}, {"books:", 10}, {"books:0", 10}, {"books:abc", 10}, {"books:-1", 10}, {"", 10}, {events.ChannelBooks, 0}, {chA, -1}} {
				if _, _, err := s.History(ctx, tc.channel, 0, tc.limit); !errors.Is(err, store.ErrInvalidQuery) {
					t.Errorf("History(%q, limit %d): err = %v, want ErrInvalidQuery", tc.channel, tc.limit, err)
				}
			}
		})

		t.Run("AfterPruning", func(t *testing.T) {
			claim(t, s, nil)
			clk := newTestClock(s)
			clk.Set(time.Now().Add(48 * time.Hour))
			if n, err := s.Prune(ctx, time.Hour, 3); err != nil || n != 4 {
				t.Fatalf("Prune keeping 3 = %d, %v; want 4 rows deleted", n, err)
			}
			// Callers tell that history no longer reaches back by the first
			// offset: it is above after+1.
			for _, tc := range []struct {
				channel   string
				after     uint64
				wantFirst uint64
			}{
				{events.ChannelBooks, 0, 5}, {events.ChannelBooks, 3, 5}, {events.ChannelBooks, 4, 5},
				{chA, 0, 3}, {chB, 0, 2}, {chC, 1, 2},
			} {
				got, _ := fullHistory(t, s, tc.channel, tc.after)
				if len(got) == 0 {
					t.Errorf("History(%q, %d) is empty", tc.channel, tc.after)
					continue
				}
				first := got[0].Offset
				if tc.channel != events.ChannelBooks {
					first = got[0].BookOffset
				}
				if first != tc.wantFirst {
					t.Errorf("History(%q, %d) starts at %d, want %d", tc.channel, tc.after, first, tc.wantFirst)
				}
			}
		})
	})
}

func TestCurrentPosition(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		if got := mustPosition(t, s, events.ChannelBooks); got != (store.Position{Epoch: s.Epoch()}) {
			t.Errorf("empty books position = %+v, want offset 0 and the epoch", got)
		}
		live := mustCreate(t, s, store.Book{Title: "Live", Author: "A"})
		doomed := mustCreate(t, s, store.Book{Title: "Doomed", Author: "A"})
		for range 2 {
			if _, err := s.Update(ctx, doomed.ID, 0, func(b *store.Book) error { b.Stock++; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Delete(ctx, doomed.ID, 3); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			channel string
			want    uint64
		}{
			{"Books", events.ChannelBooks, 5},
			{"LiveBook", events.BookChannel(live.ID), 1},
			{"DeletedBookIsItsDelete", events.BookChannel(doomed.ID), 4},
			{"UnknownBook", events.BookChannel(987654), 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := mustPosition(t, s, tt.channel); got != (store.Position{Offset: tt.want, Epoch: s.Epoch()}) {
					t.Errorf("CurrentPosition(%q) = %+v, want offset %d, epoch %q", tt.channel, got, tt.want, s.Epoch())
				}
			})
		}
		t.Run("ErrInvalidQuery", func(t *testing.T) {
			for _, ch := range []string{"", "book", "books:0", "books:01", "books:x"} {
				if _, err := s.CurrentPosition(ctx, ch); !errors.Is(err, store.ErrInvalidQuery) {
					t.Errorf("CurrentPosition(%q): err = %v, want ErrInvalidQuery", ch, err)
				}
			}
		})
	})
}
