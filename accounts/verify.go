package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/authstate"
)

// ErrRevoked is wrapped (with auth.ErrInvalidToken) for a token on the
// revocation list.
var ErrRevoked = errors.New("token revoked")

// Verify checks an access token: signature and claims, then the revocation
// list. It never touches the database, so REST requests and WebSocket
// handshakes cost no query. Every failure wraps auth.ErrInvalidToken (or
// auth.ErrMissingToken).
func (s *Service) Verify(token string) (auth.Identity, error) {
	id, err := s.tokens.Verify(token)
	if err != nil {
		return auth.Identity{}, err
	}
	if s.Revoked(id) {
		return auth.Identity{}, fmt.Errorf("%w: %w", auth.ErrInvalidToken, ErrRevoked)
	}
	return id, nil
}

// Revoked reports whether id is on the revocation list now; the hub asks it
// again for open sockets when a revocation arrives.
func (s *Service) Revoked(id auth.Identity) bool {
	return s.revs.IsRevoked(id.Subject, id.Generation, id.Session)
}

// Covers reports whether revocation r applies to id.
func Covers(r Revocation, id auth.Identity) bool {
	if r.Session != "" && r.Session == id.Session {
		return true
	}
	return r.Subject != "" && r.Subject == id.Subject && id.Generation < r.MinGeneration
}

// Ticket is a one-time credential for GET /ws?ticket=..., so browsers need
// not put an access token in a URL.
type Ticket struct {
	Value     string
	ExpiresAt time.Time
}

// IssueTicket returns a ticket for the caller's access token. The ticket
// holds the token itself: redeeming it verifies the token again, so a
// ticket never outlives its token or survives a revocation.
func (s *Service) IssueTicket(ctx context.Context, token string) (Ticket, error) {
	if s.tickets == nil {
		return Ticket{}, errors.New("tickets are not configured")
	}
	payload, err := json.Marshal(ticketPayload{Token: token})
	if err != nil {
		return Ticket{}, err
	}
	v, err := s.tickets.Issue(ctx, payload, s.opts.TicketTTL)
	if err != nil {
		return Ticket{}, fmt.Errorf("issue ticket: %w", err)
	}
	return Ticket{Value: v, ExpiresAt: s.now().Add(s.opts.TicketTTL)}, nil
}

// RedeemTicket spends a ticket and returns the identity of its token.
func (s *Service) RedeemTicket(ctx context.Context, ticket string) (auth.Identity, error) {
	if s.tickets == nil {
		return auth.Identity{}, ErrTicketInvalid
	}
	payload, err := s.tickets.Redeem(ctx, ticket)
	if errors.Is(err, authstate.ErrTicketInvalid) {
		return auth.Identity{}, fmt.Errorf("%w: %w", ErrTicketInvalid, err)
	}
	if err != nil {
		return auth.Identity{}, fmt.Errorf("redeem ticket: %w", err)
	}
	var p ticketPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return auth.Identity{}, fmt.Errorf("%w: %w", ErrTicketInvalid, err)
	}
	return s.Verify(p.Token)
}

type ticketPayload struct {
	Token string `json:"token"`
}
