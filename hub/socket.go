package hub

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// The WebSocket library reads and writes through whatever net.Conn and
// bufio pair the http.Hijacker hands it. The hub hands it its own: a socket
// that bounds every write with WriteTimeout and can be corked, and buffers
// sized for what an idle subscriber needs. Measured on 5,000 idle sockets
// (loadtest/RESULTS.md), net/http's 4 KiB reader and 4 KiB writer were the
// largest part of a socket's memory; and with one flush per frame the
// library makes one write system call per frame, the largest part of a
// delivery's CPU.
const (
	// readBufferSize is the library's read buffer: clients only send small
	// control messages (ReadLimit is 4 KiB by default), and a longer one is
	// simply read in several pieces.
	readBufferSize = 256
	// writeBufferSize is the library's write buffer. It holds a frame header
	// and spills into the socket, which collects a whole batch while corked,
	// so it need not hold a frame.
	writeBufferSize = 64
	// maxCorked caps what a corked socket collects before it writes anyway,
	// so a long batch is written in pieces of this size, each under its own
	// WriteTimeout.
	maxCorked = 64 << 10
	// corkBufferSize is the capacity of the pooled batch buffers: enough for
	// a few dozen frames, so the common batch never grows it.
	corkBufferSize = 8 << 10
)

// socket is the net.Conn under one WebSocket connection. Writes through it
// are bounded by timeout. While corked (during a batch of the writer) it
// collects what the library writes and sends it in one system call when
// uncorked, instead of one per frame.
//
// The library may write through it from two goroutines (the hub's writer,
// and its own reader answering a ping with a pong, each under the library's
// frame lock), so the cork state has its own mutex. Bytes reach the wire in
// the order they were written either way.
type socket struct {
	net.Conn
	timeout time.Duration
	pool    *sync.Pool // of *[]byte with capacity corkBufferSize

	mu       sync.Mutex
	corked   bool
	out      *[]byte   // collected bytes while corked; nil otherwise
	deadline time.Time // the write deadline last set on Conn
}

// Write writes p, or collects it while the socket is corked.
func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.corked {
		return s.writeLocked(p)
	}
	if len(*s.out)+len(p) > maxCorked {
		if err := s.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxCorked {
			return s.writeLocked(p)
		}
	}
	*s.out = append(*s.out, p...)
	return len(p), nil
}

// writeLocked writes p to the wire within the write deadline, which it
// moves to timeout from now only once less than half of that is left: so
// every write may take at least timeout/2 and at most timeout. Moving the
// deadline moves a runtime timer under the poller's lock, and doing it for
// every write was a tenth of a delivery's CPU in a 10k-subscriber profile;
// at one write every few seconds per socket this sets it about once per
// timeout/2 instead. A deadline left armed after the last write expires
// unseen.
func (s *socket) writeLocked(p []byte) (int, error) {
	if now := time.Now(); s.deadline.Sub(now) < s.timeout/2 {
		s.deadline = now.Add(s.timeout)
		if err := s.SetWriteDeadline(s.deadline); err != nil {
			return 0, err
		}
	}
	return s.Conn.Write(p)
}

func (s *socket) flushLocked() error {
	if len(*s.out) == 0 {
		return nil
	}
	_, err := s.writeLocked(*s.out)
	*s.out = (*s.out)[:0]
	return err
}

// cork starts collecting writes. The buffer comes from the hub's pool, so an
// idle socket holds none.
func (s *socket) cork() {
	s.mu.Lock()
	if !s.corked {
		s.corked = true
		s.out = s.pool.Get().(*[]byte)
	}
	s.mu.Unlock()
}

// uncork writes what was collected in one system call and stops collecting.
func (s *socket) uncork() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.corked {
		return nil
	}
	err := s.flushLocked()
	s.corked = false
	if cap(*s.out) <= 2*corkBufferSize { // a buffer a huge frame grew is left to the GC
		s.pool.Put(s.out)
	}
	s.out = nil
	return err
}

// hijackTap is the ResponseWriter handed to websocket.Accept: its Hijack
// gives the library the hub's socket and small buffers instead of net/http's.
// It has no Unwrap on purpose, so the library cannot find the Hijacker
// beneath it.
type hijackTap struct {
	http.ResponseWriter
	hub  *Hub
	sock *socket // set by Hijack
}

// Hijack takes the connection over from net/http.
func (t *hijackTap) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(t.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	t.sock = &socket{Conn: nc, timeout: t.hub.opts.WriteTimeout, pool: &t.hub.corkPool}
	br := brw.Reader
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(t.sock, readBufferSize)
	}
	// Otherwise net/http's reader holds bytes the client sent right behind
	// its handshake; the library keeps reading them from it, then re-aims it
	// at the socket, so nothing is lost (it just stays 4 KiB).
	return t.sock, bufio.NewReadWriter(br, bufio.NewWriterSize(t.sock, writeBufferSize)), nil
}

func newCorkBuffer() any {
	b := make([]byte, 0, corkBufferSize)
	return &b
}
