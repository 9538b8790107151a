package hub

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn records the writes that reach the wire.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func newTestSocket() (*socket, *countingConn) {
	cc := &countingConn{}
	return &socket{Conn: cc, timeout: time.Second, pool: &sync.Pool{New: newCorkBuffer}}, cc
}

// TestSocketCorkWritesABatchOnce: what is written while corked reaches the
// wire in one write, in order, at uncork; uncorked writes pass straight
// through.
func TestSocketCorkWritesABatchOnce(t *testing.T) {
	s, cc := newTestSocket()
	if _, err := s.Write([]byte("a")); err != nil || len(cc.writes) != 1 {
		t.Fatalf("uncorked write: err %v, %d writes, want 1", err, len(cc.writes))
	}
	s.cork()
	var want []byte
	for i := range 10 {
		p := bytes.Repeat([]byte{byte('0' + i)}, 300)
		want = append(want, p...)
		if _, err := s.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if len(cc.writes) != 1 {
		t.Fatalf("%d writes while corked, want none", len(cc.writes)-1)
	}
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	if len(cc.writes) != 2 || !bytes.Equal(cc.writes[1], want) {
		t.Fatalf("after uncork: %d writes, want the batch as one", len(cc.writes)-1)
	}
	if s.out != nil {
		t.Fatal("uncorked socket still holds its batch buffer")
	}
}

// TestSocketCorkSplitsLongBatches: a corked socket writes every maxCorked
// bytes, so one long batch is several bounded writes, and the bytes stay in
// order.
func TestSocketCorkSplitsLongBatches(t *testing.T) {
	s, cc := newTestSocket()
	s.cork()
	var want []byte
	frame := bytes.Repeat([]byte("x"), 10<<10)
	for i := range 20 { // 200 KiB
		frame[0] = byte(i)
		want = append(want, frame...)
		if _, err := s.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("y"), maxCorked+1) // larger than a whole cork: written as it is
	want = append(want, big...)
	if _, err := s.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := s.uncork(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, w := range cc.writes {
		if len(w) > maxCorked+1 {
			t.Fatalf("a write of %d bytes, more than maxCorked", len(w))
		}
		got = append(got, w...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes reordered or lost")
	}
	if n := len(cc.writes); n < 4 || n > 6 {
		t.Fatalf("%d writes for 200 KiB and one oversized frame, want about one per 64 KiB", n)
	}
}
