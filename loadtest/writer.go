package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// writer makes the run's REST writes. Writes come in chains on one book
// (create, PUT, PATCH and, for every third book, DELETE) because updates
// and deletes need a book to act on; WriteConcurrency chains run at once and
// every write waits for its slot in the Rate schedule.
type writer struct {
	cfg    Config
	t      *tracker
	client *http.Client
	token  string

	next      atomic.Int64 // next seq
	ticket    atomic.Int64 // next slot in the rate schedule
	paceStart time.Time

	ok, failed, skipped atomic.Int64
	kindOK, kindFailed  [opKinds]atomic.Int64
	latency             Histogram
}

func newWriter(cfg Config, t *tracker, token string) *writer {
	src := ""
	if len(cfg.SourceAddrs) > 0 {
		src = cfg.SourceAddrs[0]
	}
	return &writer{cfg: cfg, t: t, token: token, client: newDialClient(src, cfg.WriteConcurrency)}
}

// chains splits n writes into per-book chains.
func chains(n int) [][]opKind {
	var out [][]opKind
	for c := 0; n > 0; c++ {
		ops := []opKind{opCreate, opPut, opPatch}
		if c%3 == 2 {
			ops = append(ops, opDelete)
		}
		if len(ops) > n {
			ops = ops[:n]
		}
		n -= len(ops)
		out = append(out, ops)
	}
	return out
}

// run makes all writes and returns when they are done or ctx ends.
func (w *writer) run(ctx context.Context) {
	w.paceStart = time.Now()
	work := make(chan []opKind)
	var wg sync.WaitGroup
	for range w.cfg.WriteConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops := range work {
				w.chain(ctx, ops)
			}
		}()
	}
	defer wg.Wait()
	defer close(work)
	for _, ops := range chains(w.cfg.Writes) {
		select {
		case work <- ops:
		case <-ctx.Done():
			return
		}
	}
	// A write's transport goroutines may outlive it briefly; idle
	// connections are closed by the deferred cleanup in Run.
}

// chain runs one book's writes in order.
func (w *writer) chain(ctx context.Context, ops []opKind) {
	var bookID int64
	for i, op := range ops {
		if ctx.Err() != nil {
			return
		}
		id, err := w.write(ctx, op, bookID)
		if op == opCreate {
			if err != nil {
				// Without a book the rest of the chain cannot run.
				w.skipped.Add(int64(len(ops) - i - 1))
				return
			}
			bookID = id
		}
	}
}

// pace waits for the next slot of the Rate schedule. The schedule is
// absolute (start + n/rate), so a slow write does not shift later ones.
func (w *writer) pace(ctx context.Context) error {
	if w.cfg.Rate <= 0 {
		return ctx.Err()
	}
	n := w.ticket.Add(1) - 1
	due := w.paceStart.Add(time.Duration(float64(n) / w.cfg.Rate * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bookBody is the REST request body; pointer fields are omitted by PATCH.
type bookBody struct {
	Title  string   `json:"title"`
	Author string   `json:"author,omitempty"`
	Price  *float64 `json:"price,omitempty"`
	Stock  *int64   `json:"stock,omitempty"`
}

// write makes one write and returns the book id from the response.
func (w *writer) write(ctx context.Context, op opKind, bookID int64) (int64, error) {
	if err := w.pace(ctx); err != nil {
		return 0, err
	}
	seq := int(w.next.Add(1) - 1)
	if seq >= len(w.t.writes) {
		return 0, fmt.Errorf("write %d: beyond the planned %d", seq, len(w.t.writes))
	}
	rec := &w.t.writes[seq]
	rec.kind = op
	rec.bookID.Store(bookID)
	target := w.cfg.Targets[seq%len(w.cfg.Targets)]

	price := float64(1000+seq%9000) / 100
	stock := int64(seq % 50)
	var method, url string
	var body any
	switch op {
	case opCreate:
		method, url = http.MethodPost, target+"/api/v1/books"
		body = bookBody{Title: w.t.marker(seq), Author: "bookhub loadtest", Price: &price, Stock: &stock}
	case opPut:
		method, url = http.MethodPut, target+"/api/v1/books/"+strconv.FormatInt(bookID, 10)
		body = bookBody{Title: w.t.marker(seq), Author: "bookhub loadtest", Price: &price, Stock: &stock}
	case opPatch:
		method, url = http.MethodPatch, target+"/api/v1/books/"+strconv.FormatInt(bookID, 10)
		body = bookBody{Title: w.t.marker(seq), Stock: &stock}
	case opDelete:
		method, url = http.MethodDelete, target+"/api/v1/books/"+strconv.FormatInt(bookID, 10)
		// Registered before the request: the event may beat the response.
		w.t.deletes.Store(bookID, seq)
	}
	id, err := w.do(ctx, rec, method, url, body)
	if err != nil {
		rec.state.Store(stateFailed)
		w.failed.Add(1)
		w.kindFailed[op].Add(1)
		w.t.errs.addErr("write "+op.String(), err)
		return 0, err
	}
	rec.state.Store(stateOK)
	w.ok.Add(1)
	w.kindOK[op].Add(1)
	w.t.maybeComplete(rec)
	return id, nil
}

// do sends one request, stamping rec's start just before it goes out so the
// measured latency excludes request building.
func (w *writer) do(ctx context.Context, rec *writeRec, method, url string, body any) (int64, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, url, rd)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	began := time.Now()
	rec.start.Store(w.t.now() + 1)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	w.latency.Record(time.Since(began))
	if err != nil {
		return 0, fmt.Errorf("%s: read response: %w", method, err)
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%s /api/v1/books: status %d", method, resp.StatusCode)
	}
	if method == http.MethodDelete {
		return 0, nil
	}
	var b struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(data, &b); err != nil || b.ID <= 0 {
		return 0, fmt.Errorf("%s /api/v1/books: response without a book id", method)
	}
	return b.ID, nil
}
