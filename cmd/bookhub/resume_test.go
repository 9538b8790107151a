package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/config"
	"github.com/bookhub/bookhub/internal/testenv"
	"github.com/bookhub/bookhub/store"
)

// listPosition is the position member of GET /api/v1/books.
type listPosition struct {
	Position struct {
		Channel string `json:"channel"`
		Offset  uint64 `json:"offset"`
		Epoch   string `json:"epoch"`
	} `json:"position"`
}

// dialSince opens a socket resuming channel after offset, reads the welcome
// and the subscribed reply, and returns both.
func dialSince(t *testing.T, base, token, channel string, offset uint64, epoch string) (*websocket.Conn, frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws?token=" + token +
		"&subscribe=" + channel + "&since=" + strconv.FormatUint(offset, 10) + "&epoch=" + epoch
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if f := readFrame(t, c); f.Type != "welcome" {
		t.Fatalf("first frame = %+v, want welcome", f)
	}
	f := readFrame(t, c)
	if f.Type != "subscribed" || f.Recovered == nil {
		t.Fatalf("frame = %+v, want subscribed with recovered", f)
	}
	return c, f
}

// expectOffsets reads events and checks they are channel's offsets from,
// from+1, ... to, in order.
func expectOffsets(t *testing.T, c *websocket.Conn, channel string, from, to uint64) []frame {
	t.Helper()
	var got []frame
	for want := from; want <= to; want++ {
		f := readFrame(t, c)
		if f.Type != "event" || f.Channel != channel || f.Offset != want {
			t.Fatalf("frame %+v, want the event at offset %d on %s", f, want, channel)
		}
		got = append(got, f)
	}
	return got
}

func createBook(t *testing.T, base, token, title string) book {
	t.Helper()
	var b book
	if resp := do(t, "POST", base+"/api/v1/books", token, map[string]any{"title": title, "author": "A"}, &b); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %q: %s", title, resp.Status)
	}
	return b
}

// TestSnapshotThenStream is the dashboard pattern: load the list over REST,
// subscribe with since = its position, and see every later change exactly
// once, and nothing the snapshot already had.
func TestSnapshotThenStream(t *testing.T) {
	app := startApp(t, "snap", nil)
	base := "http://" + app.Addr()
	editor, viewer := issue(t, auth.RoleEditor), issue(t, auth.RoleViewer)
	for i := range 3 {
		createBook(t, base, editor, "before "+strconv.Itoa(i))
	}
	var list listPosition
	resp := do(t, "GET", base+"/api/v1/books", "", nil, &list)
	if list.Position.Offset != 3 || resp.Header.Get("Bookhub-Offset") != "3" || resp.Header.Get("Bookhub-Epoch") != list.Position.Epoch {
		t.Fatalf("snapshot position %+v, headers %q %q", list.Position, resp.Header.Get("Bookhub-Offset"), resp.Header.Get("Bookhub-Epoch"))
	}
	c, sub := dialSince(t, base, viewer, "books", list.Position.Offset, list.Position.Epoch)
	if !*sub.Recovered || sub.Offset != 3 || sub.Epoch != list.Position.Epoch {
		t.Fatalf("subscribed %+v, want recovered at 3", sub)
	}
	b := createBook(t, base, editor, "after")
	got := expectOffsets(t, c, "books", 4, 4)
	if got[0].BookID != b.ID || got[0].Event != "book.created" {
		t.Errorf("event %+v, want the creation of book %d", got[0], b.ID)
	}

	t.Run("OneBookByItsVersion", func(t *testing.T) {
		resp := do(t, "GET", base+"/api/v1/books/"+itoa(b.ID), "", nil, nil)
		bc := "books:" + itoa(b.ID)
		c, sub := dialSince(t, base, viewer, bc, 1, resp.Header.Get("Bookhub-Epoch"))
		if resp.Header.Get("Bookhub-Offset") != "1" || !*sub.Recovered {
			t.Fatalf("book offset %q, subscribed %+v", resp.Header.Get("Bookhub-Offset"), sub)
		}
		if r := do(t, "PATCH", base+"/api/v1/books/"+itoa(b.ID), editor, map[string]any{"stock": 9}, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("PATCH: %s", r.Status)
		}
		expectOffsets(t, c, bc, 2, 2)
	})
}

// TestResumeAfterDisconnect: a client that drops and comes back with its
// last offset gets exactly what it missed, then live events, with no gap and
// no duplicate; one that cannot be recovered is told so, with the position
// to continue from.
func TestResumeAfterDisconnect(t *testing.T) {
	app := startApp(t, "resume", nil)
	base := "http://" + app.Addr()
	editor, viewer := issue(t, auth.RoleEditor), issue(t, auth.RoleViewer)
	c := dialWS(t, base, viewer, "books")
	createBook(t, base, editor, "one")
	createBook(t, base, editor, "two")
	seen := expectOffsets(t, c, "books", 1, 2)
	epoch := seen[1].Epoch
	c.CloseNow()

	for i := range 3 {
		createBook(t, base, editor, "missed "+strconv.Itoa(i))
	}
	c2, sub := dialSince(t, base, viewer, "books", 2, epoch)
	if !*sub.Recovered || sub.Offset != 2 {
		t.Fatalf("subscribed %+v, want recovered from 2", sub)
	}
	expectOffsets(t, c2, "books", 3, 5)
	createBook(t, base, editor, "live")
	expectOffsets(t, c2, "books", 6, 6)

	for _, tc := range []struct {
		name   string
		offset uint64
		epoch  string
	}{
		{"WrongEpoch", 2, "0000000000000000"},
		{"FutureOffset", 99, epoch},
		{"EmptyEpoch", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list listPosition
			do(t, "GET", base+"/api/v1/books", "", nil, &list)
			cur := list.Position.Offset
			c, sub := dialSince(t, base, viewer, "books", tc.offset, tc.epoch)
			if *sub.Recovered || sub.Offset != cur || sub.Epoch != epoch {
				t.Fatalf("subscribed %+v, want recovered false at the current position %d/%s", sub, cur, epoch)
			}
			createBook(t, base, editor, tc.name)
			expectOffsets(t, c, "books", cur+1, cur+1)
		})
	}
}

// TestDeliveryAcrossRedisFaults: Redis restarted and then flushed while
// writes continue on two instances; subscribers that resume from their last
// offset whenever their stream says it is incomplete or their socket drops
// end with every event, in offset order, none twice. History lives in the
// database, so neither fault costs recovery.
func TestDeliveryAcrossRedisFaults(t *testing.T) {
	redis := testenv.StartRedis(t)
	env := map[string]string{
		config.EnvDatabaseURL: testenv.MySQL(t),
		config.EnvRedisURL:    redis.URL(),
	}
	apps := []*App{startApp(t, "rf-0", env), startApp(t, "rf-1", env)}
	bases := []string{"http://" + apps[0].Addr(), "http://" + apps[1].Addr()}
	editor, viewer := issue(t, auth.RoleEditor), issue(t, auth.RoleViewer)
	subs := []*websocket.Conn{dialWS(t, bases[0], viewer, "books"), dialWS(t, bases[1], viewer, "books")}

	const perPhase = 10
	write := func(phase string) {
		for i := range perPhase {
			createBook(t, bases[i%2], editor, phase+" "+strconv.Itoa(i))
		}
	}
	write("before")
	redis.Stop()
	write("down")
	redis.Start()
	write("restarted")
	flushRedis(t, redis.Addr())
	write("flushed")

	total := uint64(4 * perPhase)
	for i, c := range subs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for want := uint64(1); want <= total; want++ {
			var f frame
			if err := readJSON(ctx, c, &f); err != nil {
				cancel()
				t.Fatalf("subscriber %d: waiting for offset %d: %v", i, want, err)
			}
			if f.Type != "event" || f.Offset != want {
				cancel()
				t.Fatalf("subscriber %d: frame %+v, want the event at offset %d", i, f, want)
			}
		}
		cancel()
	}
}

func flushRedis(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial redis: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$8\r\nFLUSHALL\r\n")); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	buf := make([]byte, 16)
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "+OK") {
		t.Fatalf("FLUSHALL answered %q: %v", buf[:n], err)
	}
}

// TestCrashBetweenCommitAndPublish: an instance commits a write and dies
// before its relay publishes it. The change is in the outbox, so another
// instance's sweep publishes it and every subscriber gets it.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	env := map[string]string{
		config.EnvDatabaseURL: testenv.MySQL(t),
		config.EnvRedisURL:    testenv.Redis(t),
		config.EnvRedisPrefix: testenv.Prefix(t),
	}
	doomed, survivor := startApp(t, "doomed", env), startApp(t, "survivor", env)
	editor, viewer := issue(t, auth.RoleEditor), issue(t, auth.RoleViewer)
	c := dialWS(t, "http://"+survivor.Addr(), viewer, "books")

	// From here on the doomed instance commits but never publishes, as if
	// it were killed right after COMMIT.
	doomed.handoff = func(store.Change) {}
	b := createBook(t, "http://"+doomed.Addr(), editor, "orphan")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var f frame
	if err := readJSON(ctx, c, &f); err != nil {
		t.Fatalf("the orphaned change never arrived: %v", err)
	}
	if f.Type != "event" || f.BookID != b.ID || f.Offset != 1 || f.Origin != "doomed" {
		t.Fatalf("frame %+v, want the doomed instance's change at offset 1", f)
	}
}
