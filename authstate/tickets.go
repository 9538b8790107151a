package authstate

import (
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bookhub/bookhub/redisconn"
)

// Tickets issues one-time tickets: short-lived random strings that stand
// for a payload (the identity of a WebSocket client) and can be redeemed
// exactly once, so that a browser can open a WebSocket without putting a
// long-lived token in the URL. Implementations are safe for concurrent use.
type Tickets interface {
	// Issue stores payload for ttl (0 < ttl <= MaxTicketTTL) and returns a
	// new ticket: "bht_" followed by 256 random bits in unpadded base64url.
	Issue(ctx context.Context, payload []byte, ttl time.Duration) (ticket string, err error)
	// Redeem returns the payload of ticket and consumes it: of any number
	// of concurrent calls, on any instance, exactly one succeeds. It
	// returns ErrTicketInvalid for a ticket that is malformed, unknown,
	// used or expired, and another error when the store failed.
	Redeem(ctx context.Context, ticket string) (payload []byte, err error)
}

// TicketPrefix starts every ticket, so that one found in a log or a
// secret scanner is recognisable.
const TicketPrefix = "bht_"

// MaxTicketTTL caps Issue's ttl: a ticket is redeemed within seconds of
// being issued, and a long-lived one is a bearer token in a URL.
const MaxTicketTTL = 5 * time.Minute

// ticketBytes is the randomness of a ticket.
const ticketBytes = 32

// ticketLen is the length of a well-formed ticket.
var ticketLen = len(TicketPrefix) + base64.RawURLEncoding.EncodedLen(ticketBytes)

// newTicket returns a fresh ticket and its id.
func newTicket() (ticket, id string) {
	b := make([]byte, ticketBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather)
	ticket = TicketPrefix + base64.RawURLEncoding.EncodeToString(b)
	return ticket, ticketID(ticket)
}

// ticketID is the key a ticket is stored under: its SHA-256 in hex, so
// that whoever reads the store (a Redis dump, a MONITOR) gets no ticket
// that could be redeemed. The ticket has 256 bits of entropy, so a plain
// hash is enough; no salt or slow hash is needed.
func ticketID(ticket string) string {
	h := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(h[:])
}

// parseTicket checks the form of a ticket before any lookup.
func parseTicket(ticket string) (id string, err error) {
	rest, ok := strings.CutPrefix(ticket, TicketPrefix)
	if !ok || len(ticket) != ticketLen {
		return "", ErrTicketInvalid
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(rest); err != nil {
		return "", ErrTicketInvalid
	}
	return ticketID(ticket), nil
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTicketTTL {
		return fmt.Errorf("authstate: ticket ttl %v not in (0, %v]", ttl, MaxTicketTTL)
	}
	return nil
}

// TicketOptions configures NewMemoryTickets.
type TicketOptions struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// MemoryTickets is the in-process Tickets of a single instance. Memory is
// bounded by the tickets issued within the last MaxTicketTTL: expired ones
// are pruned on every Issue, in O(log n) each, from a heap ordered by
// expiry.
type MemoryTickets struct {
	now func() time.Time

	mu      sync.Mutex
	tickets map[string]memTicket // by id
	expiry  expiryHeap
}

type memTicket struct {
	payload []byte
	expires time.Time
}

var _ Tickets = (*MemoryTickets)(nil)

// NewMemoryTickets returns an empty in-process ticket store.
func NewMemoryTickets(o TicketOptions) *MemoryTickets {
	return &MemoryTickets{now: orNow(o.Now), tickets: make(map[string]memTicket)}
}

// Issue implements Tickets. It fails only for a ttl out of range.
func (m *MemoryTickets) Issue(_ context.Context, payload []byte, ttl time.Duration) (string, error) {
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	ticket, id := newTicket()
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for len(m.expiry) > 0 && !now.Before(m.expiry[0].expires) {
		e := heap.Pop(&m.expiry).(expiryEntry)
		if t, ok := m.tickets[e.id]; ok && t.expires.Equal(e.expires) {
			delete(m.tickets, e.id)
		}
	}
	exp := now.Add(ttl)
	m.tickets[id] = memTicket{payload: append([]byte(nil), payload...), expires: exp}
	heap.Push(&m.expiry, expiryEntry{id: id, expires: exp})
	return ticket, nil
}

// Redeem implements Tickets.
func (m *MemoryTickets) Redeem(_ context.Context, ticket string) ([]byte, error) {
	id, err := parseTicket(ticket)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tickets[id]
	if !ok {
		return nil, ErrTicketInvalid
	}
	delete(m.tickets, id) // used or expired: gone either way
	if !m.now().Before(t.expires) {
		return nil, ErrTicketInvalid
	}
	return t.payload, nil
}

type expiryEntry struct {
	id      string
	expires time.Time
}

// expiryHeap is a min-heap of tickets by expiry (container/heap).
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// RedisTickets shares tickets between instances: a ticket issued by one
// can be redeemed on any other, once. Each is a string at
// keys.Tickets(<sha256 of the ticket>) holding the payload, written with
// SET PX ttl NX and consumed with GETDEL (Redis 6.2+), which is atomic, so
// two instances redeeming the same ticket cannot both get it. Redis expires
// unredeemed tickets on its own.
type RedisTickets struct {
	client redis.UniversalClient
	keys   redisconn.Keys
}

var _ Tickets = (*RedisTickets)(nil)

// NewRedisTickets returns a ticket store on client (the caller's; it is
// never closed here).
func NewRedisTickets(client redis.UniversalClient, keys redisconn.Keys) (*RedisTickets, error) {
	if client == nil {
		return nil, errors.New("authstate: nil Redis client")
	}
	if err := keys.Validate(); err != nil {
		return nil, fmt.Errorf("authstate: %w", err)
	}
	return &RedisTickets{client: client, keys: keys}, nil
}

// Issue implements Tickets. It fails for a ttl out of range and when Redis
// does not take the ticket.
func (r *RedisTickets) Issue(ctx context.Context, payload []byte, ttl time.Duration) (string, error) {
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	ticket, id := newTicket()
	if payload == nil {
		payload = []byte{} // go-redis would send nil as ""; say so
	}
	ok, err := r.client.SetNX(ctx, r.keys.Tickets(id), payload, ttl).Result()
	if err != nil {
		return "", fmt.Errorf("authstate: issue ticket: %w", err)
	}
	if !ok {
		// 256 random bits collided: the random source is broken.
		return "", errors.New("authstate: issue ticket: id already in use")
	}
	return ticket, nil
}

// Redeem implements Tickets.
func (r *RedisTickets) Redeem(ctx context.Context, ticket string) ([]byte, error) {
	id, err := parseTicket(ticket)
	if err != nil {
		return nil, err
	}
	b, err := r.client.GetDel(ctx, r.keys.Tickets(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrTicketInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("authstate: redeem ticket: %w", err)
	}
	return b, nil
}
