package authstate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/authstate"
	"github.com/bookhub/bookhub/redisconn"
)

// ticketImpls builds each implementation for a test.
var ticketImpls = map[string]func(t *testing.T) authstate.Tickets{
	"Memory": func(*testing.T) authstate.Tickets { return authstate.NewMemoryTickets(authstate.TicketOptions{}) },
	"Redis": func(t *testing.T) authstate.Tickets {
		c, keys := sharedRedis(t)
		tk, err := authstate.NewRedisTickets(c, keys)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	},
}

func TestTickets(t *testing.T) {
	for name, mk := range ticketImpls {
		t.Run(name, func(t *testing.T) {
			tk := mk(t)
			ctx := testCtx(t, 10*time.Second)
			ticket, err := tk.Issue(ctx, []byte(`{"sub":"alice"}`), 30*time.Second)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !strings.HasPrefix(ticket, "bht_") || len(ticket) != len("bht_")+43 {
				t.Errorf("ticket %q: want bht_ and 43 base64url characters", ticket)
			}
			other, err := tk.Issue(ctx, nil, 30*time.Second)
			if err != nil || other == ticket {
				t.Fatalf("second Issue = %q, %v: want a different ticket", other, err)
			}

			t.Run("OK", func(t *testing.T) {
				got, err := tk.Redeem(ctx, ticket)
				if err != nil || string(got) != `{"sub":"alice"}` {
					t.Fatalf("Redeem = %q, %v", got, err)
				}
			})
			t.Run("ErrUsed", func(t *testing.T) {
				if _, err := tk.Redeem(ctx, ticket); !errors.Is(err, authstate.ErrTicketInvalid) {
					t.Fatalf("second Redeem = %v, want ErrTicketInvalid", err)
				}
			})
			t.Run("OKEmptyPayload", func(t *testing.T) {
				got, err := tk.Redeem(ctx, other)
				if err != nil || len(got) != 0 {
					t.Fatalf("Redeem = %q, %v", got, err)
				}
			})

			invalid := []struct{ name, ticket string }{
				{"ErrEmpty", ""},
				{"ErrNoPrefix", strings.TrimPrefix(ticket, "bht_")},
				{"ErrWrongPrefix", "xyz_" + strings.TrimPrefix(ticket, "bht_")},
				{"ErrShort", ticket[:len(ticket)-1]},
				{"ErrLong", ticket + "A"},
				{"ErrNotBase64URL", ticket[:len(ticket)-1] + "+"},
				{"ErrUnknown", "bht_" + strings.Repeat("A", 43)},
			}
			for _, tt := range invalid {
				t.Run(tt.name, func(t *testing.T) {
					if _, err := tk.Redeem(ctx, tt.ticket); !errors.Is(err, authstate.ErrTicketInvalid) {
						t.Fatalf("Redeem(%q) = %v, want ErrTicketInvalid", tt.ticket, err)
					}
				})
			}
			for _, ttl := range []time.Duration{0, -time.Second, authstate.MaxTicketTTL + time.Millisecond} {
				if _, err := tk.Issue(ctx, nil, ttl); err == nil || !strings.Contains(err.Error(), "ttl") {
					t.Errorf("Issue(ttl %v) = %v, want a ttl error", ttl, err)
				}
			}
		})
	}
}

func TestTicketsRedeemOnceConcurrently(t *testing.T) {
	for name, mk := range ticketImpls {
		t.Run(name, func(t *testing.T) {
			tk := mk(t)
			ctx := testCtx(t, 10*time.Second)
			ticket, err := tk.Issue(ctx, []byte("p"), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			const n = 16
			var wg sync.WaitGroup
			errs := make([]error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, errs[i] = tk.Redeem(ctx, ticket)
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, authstate.ErrTicketInvalid):
					t.Errorf("Redeem: %v", err)
				}
			}
			if ok != 1 {
				t.Errorf("%d of %d concurrent redeems succeeded, want exactly 1", ok, n)
			}
		})
	}
}

func TestMemoryTicketsExpire(t *testing.T) {
	clk := newClock()
	tk := authstate.NewMemoryTickets(authstate.TicketOptions{Now: clk.Now})
	ctx := testCtx(t, 5*time.Second)
	short, err := tk.Issue(ctx, []byte("s"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	long, err := tk.Issue(ctx, []byte("l"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Second)
	if _, err := tk.Redeem(ctx, short); !errors.Is(err, authstate.ErrTicketInvalid) {
		t.Errorf("Redeem at expiry = %v, want ErrTicketInvalid", err)
	}
	if got, err := tk.Redeem(ctx, long); err != nil || string(got) != "l" {
		t.Errorf("Redeem of a live ticket = %q, %v", got, err)
	}
}

func TestRedisTickets(t *testing.T) {
	c, keys := sharedRedis(t)
	a, err := authstate.NewRedisTickets(c, keys)
	if err != nil {
		t.Fatal(err)
	}
	b, err := authstate.NewRedisTickets(c, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)

	t.Run("SharedBetweenInstances", func(t *testing.T) {
		ticket, err := a.Issue(ctx, []byte("alice"), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := b.Redeem(ctx, ticket); err != nil || string(got) != "alice" {
			t.Fatalf("Redeem on the other instance = %q, %v", got, err)
		}
		if _, err := a.Redeem(ctx, ticket); !errors.Is(err, authstate.ErrTicketInvalid) {
			t.Fatalf("Redeem back on the issuer = %v, want ErrTicketInvalid", err)
		}
	})

	t.Run("StoresOnlyAHash", func(t *testing.T) {
		ticket, err := a.Issue(ctx, []byte("bob"), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(ticket))
		key := keys.Tickets(hex.EncodeToString(sum[:]))
		found, err := c.Keys(ctx, keys.Prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0] != key {
			t.Fatalf("keys under the prefix = %v, want only %s", found, key)
		}
		secret := strings.TrimPrefix(ticket, "bht_")
		if v := c.Get(ctx, key).Val(); v != "bob" || strings.Contains(found[0], secret) {
			t.Errorf("stored %q at %s: want the payload under a hash of the ticket", v, found[0])
		}
		if pttl := c.PTTL(ctx, key).Val(); pttl <= 0 || pttl > 30*time.Second {
			t.Errorf("PTTL = %v, want in (0, 30s]", pttl)
		}
	})

	t.Run("ErrExpired", func(t *testing.T) {
		ticket, err := a.Issue(ctx, []byte("carol"), 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(ticket))
		key := keys.Tickets(hex.EncodeToString(sum[:]))
		waitExpired(ctx, t, c, key)
		if _, err := b.Redeem(ctx, ticket); !errors.Is(err, authstate.ErrTicketInvalid) {
			t.Fatalf("Redeem after expiry = %v, want ErrTicketInvalid", err)
		}
	})

	t.Run("ErrRedisDown", func(t *testing.T) {
		dead, err := authstate.NewRedisTickets(deadRedis(t), keys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dead.Issue(ctx, nil, time.Second); err == nil {
			t.Error("Issue with Redis down succeeded")
		}
		ticket, err := a.Issue(ctx, nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dead.Redeem(ctx, ticket)
		if err == nil || errors.Is(err, authstate.ErrTicketInvalid) {
			t.Errorf("Redeem with Redis down = %v, want a store error, not ErrTicketInvalid", err)
		}
	})
}

func TestNewRedisTicketsRefuses(t *testing.T) {
	c, keys := sharedRedis(t)
	if _, err := authstate.NewRedisTickets(nil, keys); err == nil {
		t.Error("nil client accepted")
	}
	_, err := authstate.NewRedisTickets(c, redisconn.Keys{Prefix: "{x}"})
	if err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("bad prefix: %v", err)
	}
}

func TestMemoryTicketsPruned(t *testing.T) {
	clk := newClock()
	tk := authstate.NewMemoryTickets(authstate.TicketOptions{Now: clk.Now})
	ctx := testCtx(t, 5*time.Second)
	for i := range 100 {
		ttl := time.Duration(i%10+1) * time.Second
		if _, err := tk.Issue(ctx, []byte("x"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(5 * time.Second) // tickets of 1s..5s have expired
	if _, err := tk.Issue(ctx, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := authstate.StoredTickets(tk); n != 51 {
		t.Errorf("%d tickets stored after expiry, want 51 (50 live + the new one)", n)
	}
}
