package authstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Revocation cuts off access tokens before they expire. It covers the
// tokens of Subject whose generation is below MinGeneration (a password
// change, "sign out everywhere", a role change), the tokens of Session (one
// refresh family: a sign-out), or both.
type Revocation struct {
	// Subject with MinGeneration: tokens of Subject whose generation is
	// below MinGeneration are revoked. Both or neither.
	Subject       string
	MinGeneration uint64
	// Session: every token of this session (refresh family) is revoked.
	Session string
	// Until is when the entry may be forgotten: every token it covers has
	// expired by then (issue time of the newest covered token plus the
	// access-token lifetime). Required.
	Until time.Time
}

// Revocations is the list of revoked access tokens, checked on every
// request and WebSocket handshake.
//
// Delivery: a revocation is enforced on the instance that recorded it as
// soon as Revoke returns, and on the other instances of a Redis deployment
// within about one poll interval (250ms by default) once Redis has it; an
// instance that starts learns every live revocation before it serves.
// Entries are forgotten at their Until. Implementations are safe for
// concurrent use.
type Revocations interface {
	// Revoke records r locally at once, then shares it. An error wrapping
	// ErrShared means r is enforced here but not yet elsewhere; the Redis
	// implementation keeps trying to share it. Other errors mean r was
	// refused (invalid, or the list is closed) and is not recorded.
	Revoke(ctx context.Context, r Revocation) error
	// IsRevoked reports whether a token of subject with generation, in
	// session, is revoked. It is the hot path: in memory, O(1), no
	// allocation, no I/O.
	IsRevoked(subject string, generation uint64, session string) bool
	// Close stops sharing; Revoke then fails with ErrClosed. IsRevoked
	// keeps answering from what was learned.
	Close() error
}

// RevocationOptions configures NewMemoryRevocations and NewRedisRevocations.
type RevocationOptions struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnRevoke, when set, is called once per revocation learned, local or
	// from another instance (including those learned at start), e.g. to
	// close the WebSockets it covers. It is called without locks held,
	// from the goroutine of Revoke or of the poll loop; it must not block
	// for long, and must not call Revoke.
	OnRevoke func(Revocation)
	// Logger receives Redis failures, at most one line per 10s while they
	// last. Default slog.Default(). Redis only.
	Logger *slog.Logger
	// Poll is how often an instance checks Redis for revocations made
	// elsewhere. Default 250ms: one GET of a small counter per instance,
	// and a revocation reaches every instance well within a second. Redis
	// only.
	Poll time.Duration
}

// DefaultPoll is the default RevocationOptions.Poll.
const DefaultPoll = 250 * time.Millisecond

// validate refuses a revocation that covers nothing or never ends.
func (r Revocation) validate() error {
	switch {
	case (r.Subject == "") != (r.MinGeneration == 0):
		return errors.New("authstate: revocation needs both Subject and MinGeneration, or neither")
	case r.Subject == "" && r.Session == "":
		return errors.New("authstate: revocation covers nothing: set Subject and MinGeneration, or Session")
	case r.Until.IsZero():
		return errors.New("authstate: revocation needs Until, or it would be kept forever")
	}
	return nil
}

// wireRevocation is a revocation as a member of the Redis set. Its JSON
// is deterministic (fixed field order), so two instances that record the
// same revocation add the same member.
type wireRevocation struct {
	Subject       string `json:"s,omitempty"`
	MinGeneration uint64 `json:"g,omitempty"`
	Session       string `json:"x,omitempty"`
	UntilMS       int64  `json:"u"`
}

// encode returns r's member string; Until is kept to the millisecond.
func (r Revocation) encode() string {
	b, _ := json.Marshal(wireRevocation{r.Subject, r.MinGeneration, r.Session, r.Until.UnixMilli()}) // cannot fail
	return string(b)
}

func decodeRevocation(member string) (Revocation, error) {
	var w wireRevocation
	if err := json.Unmarshal([]byte(member), &w); err != nil {
		return Revocation{}, fmt.Errorf("decode revocation %q: %w", member, err)
	}
	r := Revocation{Subject: w.Subject, MinGeneration: w.MinGeneration, Session: w.Session, Until: time.UnixMilli(w.UntilMS)}
	if err := r.validate(); err != nil {
		return Revocation{}, fmt.Errorf("decode revocation %q: %w", member, err)
	}
	return r, nil
}

// generationCut is the merged revocation of one subject.
type generationCut struct {
	min   uint64
	until time.Time
}

// snapshot is an immutable view of the live revocations, replaced whole on
// each change so that IsRevoked reads it without a lock.
type snapshot struct {
	subjects map[string]generationCut
	sessions map[string]time.Time
}

// table is the in-memory list both implementations enforce from. Writes
// are rare (sign-outs, password changes) and copy the snapshot; reads are
// one atomic load and two map lookups.
type table struct {
	now      func() time.Time
	onRevoke func(Revocation)
	snap     atomic.Pointer[snapshot]

	mu   sync.Mutex           // serialises writers
	seen map[string]time.Time // member -> Until: revocations already learned
}

func newTable(o RevocationOptions) *table {
	t := &table{now: orNow(o.Now), onRevoke: o.OnRevoke, seen: make(map[string]time.Time)}
	t.snap.Store(&snapshot{subjects: map[string]generationCut{}, sessions: map[string]time.Time{}})
	return t
}

// isRevoked implements Revocations.IsRevoked.
func (t *table) isRevoked(subject string, generation uint64, session string) bool {
	s := t.snap.Load()
	if len(s.subjects) == 0 && len(s.sessions) == 0 {
		return false // the common case: skip the clock
	}
	now := t.now()
	if c, ok := s.subjects[subject]; ok && generation < c.min && now.Before(c.until) {
		return true
	}
	if session != "" {
		if until, ok := s.sessions[session]; ok && now.Before(until) {
			return true
		}
	}
	return false
}

// learn merges revocations (keyed by their member strings) into the table,
// prunes expired entries, and calls OnRevoke for each one not seen before.
// It reports how many were new.
func (t *table) learn(members map[string]Revocation) int {
	t.mu.Lock()
	now := t.now()
	var fresh []Revocation
	for m, r := range members {
		if _, ok := t.seen[m]; ok || !now.Before(r.Until) {
			continue
		}
		t.seen[m] = r.Until
		fresh = append(fresh, r)
	}
	if len(fresh) > 0 || t.hasExpired(now) {
		t.rebuild(now, fresh)
	}
	t.mu.Unlock()
	if t.onRevoke != nil {
		for _, r := range fresh {
			t.onRevoke(r)
		}
	}
	return len(fresh)
}

// hasExpired reports whether the snapshot holds an entry past its Until,
// so that pruning is lazy: done on a change, or when a poll finds garbage.
func (t *table) hasExpired(now time.Time) bool {
	for _, until := range t.seen {
		if !now.Before(until) {
			return true
		}
	}
	return false
}

// rebuild copies the live part of the snapshot, adds fresh and stores the
// result. Merging keeps the highest MinGeneration per subject and the
// latest Until: every token either entry covers is covered. t.mu is held.
func (t *table) rebuild(now time.Time, fresh []Revocation) {
	old := t.snap.Load()
	s := &snapshot{
		subjects: make(map[string]generationCut, len(old.subjects)+len(fresh)),
		sessions: make(map[string]time.Time, len(old.sessions)+len(fresh)),
	}
	for k, c := range old.subjects {
		if now.Before(c.until) {
			s.subjects[k] = c
		}
	}
	for k, until := range old.sessions {
		if now.Before(until) {
			s.sessions[k] = until
		}
	}
	for _, r := range fresh {
		if r.Subject != "" {
			c := s.subjects[r.Subject]
			c.min = max(c.min, r.MinGeneration)
			if r.Until.After(c.until) {
				c.until = r.Until
			}
			s.subjects[r.Subject] = c
		}
		if r.Session != "" && r.Until.After(s.sessions[r.Session]) {
			s.sessions[r.Session] = r.Until
		}
	}
	for m, until := range t.seen {
		if !now.Before(until) {
			delete(t.seen, m)
		}
	}
	t.snap.Store(s)
}

// MemoryRevocations is the in-process Revocations of a single instance.
type MemoryRevocations struct {
	t      *table
	closed atomic.Bool
}

var _ Revocations = (*MemoryRevocations)(nil)

// NewMemoryRevocations returns an empty in-process list. Logger and Poll
// are not used.
func NewMemoryRevocations(o RevocationOptions) *MemoryRevocations {
	return &MemoryRevocations{t: newTable(o)}
}

// Revoke records r. It fails only for an invalid r or after Close. An r
// whose Until has passed covers only expired tokens and is a no-op.
func (m *MemoryRevocations) Revoke(_ context.Context, r Revocation) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := r.validate(); err != nil {
		return err
	}
	r = r.truncated()
	m.t.learn(map[string]Revocation{r.encode(): r})
	return nil
}

// IsRevoked implements Revocations.
func (m *MemoryRevocations) IsRevoked(subject string, generation uint64, session string) bool {
	return m.t.isRevoked(subject, generation, session)
}

// Close makes later Revoke calls fail with ErrClosed.
func (m *MemoryRevocations) Close() error {
	m.closed.Store(true)
	return nil
}

// truncated returns r with Until rounded up to the millisecond, as Redis
// keeps it, so that a revocation learned locally and the same one read
// back from Redis are the same entry, and the round-trip never shortens
// it.
func (r Revocation) truncated() Revocation {
	u := r.Until.Truncate(time.Millisecond)
	if u.Before(r.Until) {
		u = u.Add(time.Millisecond)
	}
	r.Until = u
	return r
}
