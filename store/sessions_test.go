package store_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

func randHash(t testing.TB) []byte {
	t.Helper()
	h := make([]byte, store.HashLen)
	_, _ = rand.Read(h) // crypto/rand.Read never fails on supported platforms.
	return h
}

// liveSession is a session and the hash of its current refresh token.
type liveSession struct {
	id   string
	hash []byte
}

func newSessionUntil(t testing.TB, s *store.Store, userID int64, expires time.Time) liveSession {
	t.Helper()
	ls := liveSession{id: fmt.Sprintf("sess-%x", randHash(t)[:8]), hash: randHash(t)}
	err := s.CreateSession(testContext(t), store.NewSession{ID: ls.id, UserID: userID, TokenHash: ls.hash, ExpiresAt: expires})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return ls
}

func newSession(t testing.TB, s *store.Store, userID int64) liveSession {
	t.Helper()
	return newSessionUntil(t, s, userID, time.Now().Add(time.Hour))
}

func sessionUser(t testing.TB, s *store.Store, email string) store.User {
	t.Helper()
	return mustCreateUser(t, s, store.NewUser{Email: email, DisplayName: "S", Role: auth.RoleEditor})
}

func rotate(t testing.TB, s *store.Store, old []byte, now time.Time, grace time.Duration) ([]byte, store.RotateResult, error) {
	t.Helper()
	next := randHash(t)
	res, err := s.RotateRefresh(testContext(t), store.RotateRequest{OldHash: old, NewHash: next, Now: now, Grace: grace})
	return next, res, err
}

func wantReuse(t *testing.T, err error, sess liveSession, userID int64) {
	t.Helper()
	var re *store.ReuseError
	if !errors.As(err, &re) || !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("err = %v, want a *ReuseError", err)
	}
	if re.SessionID != sess.id || re.UserID != userID {
		t.Errorf("ReuseError %+v, want session %s user %d", *re, sess.id, userID)
	}
}

func TestRotateRefresh(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := testContext(t)
		now := time.Now()
		t.Run("Chain", func(t *testing.T) {
			u := sessionUser(t, s, "chain@x.io")
			sess := newSession(t, s, u.ID)
			cur := sess.hash
			for i := range 4 {
				next, res, err := rotate(t, s, cur, now.Add(time.Duration(i)*time.Minute), 0)
				if err != nil {
					t.Fatalf("rotation %d: %v", i, err)
				}
				if res.SessionID != sess.id || res.User != u {
					t.Errorf("rotation %d: %+v, want session %s and %+v", i, res, sess.id, u)
				}
				cur = next
			}
		})
		t.Run("ReturnsCurrentUser", func(t *testing.T) {
			u := sessionUser(t, s, "current@x.io")
			sess := newSession(t, s, u.ID)
			renamed, err := s.UpdateUser(ctx, u.ID, store.UserPatch{DisplayName: ptr("Renamed")})
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			if _, res, err := rotate(t, s, sess.hash, now, 0); err != nil || res.User != renamed {
				t.Errorf("rotate = %+v, %v; want the current user %+v", res, err, renamed)
			}
		})
		t.Run("ReuseRevokesFamily", func(t *testing.T) {
			u := sessionUser(t, s, "reuse@x.io")
			sess := newSession(t, s, u.ID)
			second, _, err := rotate(t, s, sess.hash, now, 10*time.Second)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			third, _, err := rotate(t, s, second, now.Add(time.Second), 10*time.Second)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			// The first token again, long after its use: a stolen copy.
			_, _, err = rotate(t, s, sess.hash, now.Add(time.Minute), 10*time.Second)
			wantReuse(t, err, sess, u.ID)
			for name, h := range map[string][]byte{"old": sess.hash, "second": second, "live": third} {
				if _, _, err := rotate(t, s, h, now.Add(2*time.Minute), 10*time.Second); !errors.Is(err, store.ErrRefreshRevoked) {
					t.Errorf("%s token after reuse: err = %v, want ErrRefreshRevoked", name, err)
				}
			}
		})
		t.Run("ReuseWithinGraceAfterSuccessorUsed", func(t *testing.T) {
			u := sessionUser(t, s, "reuse-grace@x.io")
			sess := newSession(t, s, u.ID)
			second, _, err := rotate(t, s, sess.hash, now, time.Minute)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			if _, _, err := rotate(t, s, second, now.Add(time.Second), time.Minute); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			// Within the grace period, but the client did receive the
			// successor (it used it): not a lost response.
			_, _, err = rotate(t, s, sess.hash, now.Add(2*time.Second), time.Minute)
			wantReuse(t, err, sess, u.ID)
		})
		t.Run("ReuseWithoutGrace", func(t *testing.T) {
			u := sessionUser(t, s, "nograce@x.io")
			sess := newSession(t, s, u.ID)
			if _, _, err := rotate(t, s, sess.hash, now, 0); err != nil {
				t.Fatalf("rotate: %v", err)
			}
			_, _, err := rotate(t, s, sess.hash, now, 0)
			wantReuse(t, err, sess, u.ID)
		})
		t.Run("GraceRetry", func(t *testing.T) {
			u := sessionUser(t, s, "retry@x.io")
			sess := newSession(t, s, u.ID)
			lost, _, err := rotate(t, s, sess.hash, now, 10*time.Second)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			// The client never got lost; it retries with the first token.
			retried, res, err := rotate(t, s, sess.hash, now.Add(5*time.Second), 10*time.Second)
			if err != nil || res.SessionID != sess.id {
				t.Fatalf("retry within grace: %+v, %v", res, err)
			}
			// Grace counts from the first use: a retry cannot extend it.
			_, _, err = rotate(t, s, sess.hash, now.Add(11*time.Second), 10*time.Second)
			wantReuse(t, err, sess, u.ID)
			for name, h := range map[string][]byte{"lost": lost, "retried": retried} {
				if _, _, err := rotate(t, s, h, now.Add(12*time.Second), 10*time.Second); !errors.Is(err, store.ErrRefreshRevoked) {
					t.Errorf("%s successor after reuse: err = %v, want ErrRefreshRevoked", name, err)
				}
			}
		})
		t.Run("GraceRetrySupersedesTheLostSuccessor", func(t *testing.T) {
			u := sessionUser(t, s, "superseded@x.io")
			sess := newSession(t, s, u.ID)
			lost, _, err := rotate(t, s, sess.hash, now, 10*time.Second)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			retried, _, err := rotate(t, s, sess.hash, now.Add(time.Second), 10*time.Second)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if _, _, err := rotate(t, s, retried, now.Add(2*time.Second), 10*time.Second); err != nil {
				t.Fatalf("the retried successor is live: %v", err)
			}
			// The successor the client never received turns up: reuse.
			_, _, err = rotate(t, s, lost, now.Add(3*time.Second), 10*time.Second)
			wantReuse(t, err, sess, u.ID)
		})
		t.Run("Invalid", func(t *testing.T) {
			for name, h := range map[string][]byte{"Unknown": randHash(t), "Short": {1, 2, 3}, "Nil": nil} {
				if _, _, err := rotate(t, s, h, now, 0); !errors.Is(err, store.ErrRefreshInvalid) {
					t.Errorf("%s: err = %v, want ErrRefreshInvalid", name, err)
				}
			}
			u := sessionUser(t, s, "badnew@x.io")
			sess := newSession(t, s, u.ID)
			_, err := s.RotateRefresh(ctx, store.RotateRequest{OldHash: sess.hash, NewHash: []byte("short")})
			if err == nil {
				t.Error("a short new hash was accepted")
			}
			if _, _, err := rotate(t, s, sess.hash, now, 0); err != nil {
				t.Errorf("the refused rotation used the token: %v", err)
			}
		})
		t.Run("Expired", func(t *testing.T) {
			u := sessionUser(t, s, "expired@x.io")
			exp := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
			sess := newSessionUntil(t, s, u.ID, exp)
			if _, _, err := rotate(t, s, sess.hash, exp, 0); !errors.Is(err, store.ErrRefreshExpired) {
				t.Errorf("at expiry: err = %v, want ErrRefreshExpired", err)
			}
			if _, _, err := rotate(t, s, sess.hash, exp.Add(-time.Microsecond), 0); err != nil {
				t.Errorf("just before expiry: %v", err)
			}
		})
		t.Run("DisabledUser", func(t *testing.T) {
			u := sessionUser(t, s, "disabled@x.io")
			sess := newSession(t, s, u.ID)
			// Disable behind UpdateUser's back, so the session is still
			// live and only the rotation's own check can refuse it.
			if err := s.ExecForTest(ctx, "UPDATE users SET disabled = ? WHERE id = ?", true, u.ID); err != nil {
				t.Fatalf("disable: %v", err)
			}
			if _, _, err := rotate(t, s, sess.hash, now, 0); !errors.Is(err, store.ErrUserDisabled) {
				t.Errorf("err = %v, want ErrUserDisabled", err)
			}
			if err := s.ExecForTest(ctx, "UPDATE users SET disabled = ? WHERE id = ?", false, u.ID); err != nil {
				t.Fatalf("enable: %v", err)
			}
			if _, _, err := rotate(t, s, sess.hash, now, 0); !errors.Is(err, store.ErrRefreshRevoked) {
				t.Errorf("after re-enabling: err = %v, want ErrRefreshRevoked (the session stays revoked)", err)
			}
		})
	})
}

// TestRotateRefreshConcurrent refreshes one token from 8 goroutines at once.
// Without grace exactly one wins and the others see reuse (and end the
// family); with grace all are retries of one another and exactly one
// successor, one of those issued, stays live.
func TestRotateRefreshConcurrent(t *testing.T) {
	for _, d := range driverCases {
		t.Run(d.name, func(t *testing.T) {
			s := openWith(t, d.url(t), store.Options{Logger: testLogger(t), MaxOpenConns: 8})
			for _, grace := range []time.Duration{0, time.Minute} {
				t.Run(fmt.Sprintf("Grace%s", grace), func(t *testing.T) {
					u := sessionUser(t, s, fmt.Sprintf("conc%d@x.io", grace))
					sess := newSession(t, s, u.ID)
					const n = 8
					var (
						wg     sync.WaitGroup
						start  = make(chan struct{})
						hashes [n][]byte
						errs   [n]error
					)
					for i := range n {
						hashes[i] = randHash(t)
						wg.Go(func() {
							<-start
							_, errs[i] = s.RotateRefresh(testContext(t), store.RotateRequest{
								OldHash: sess.hash, NewHash: hashes[i], Now: time.Now(), Grace: grace})
						})
					}
					close(start)
					wg.Wait()
					var ok, reused, revoked []int
					for i, err := range errs {
						switch {
						case err == nil:
							ok = append(ok, i)
						case errors.Is(err, store.ErrRefreshReused):
							reused = append(reused, i)
						case errors.Is(err, store.ErrRefreshRevoked) && grace == 0:
							revoked = append(revoked, i)
						default:
							t.Errorf("goroutine %d: %v", i, err)
						}
					}
					if grace == 0 {
						// The first loser detects reuse and ends the family;
						// the later ones find it revoked.
						if len(ok) != 1 || len(reused) < 1 || len(ok)+len(reused)+len(revoked) != n {
							t.Errorf("%d successes, %d reuses, %d revoked; want 1, at least 1, the rest revoked", len(ok), len(reused), len(revoked))
						}
						// The winner's successor is in the revoked family;
						// the losers' were never stored.
						for i := range n {
							_, _, err := rotate(t, s, hashes[i], time.Now(), 0)
							want := store.ErrRefreshInvalid
							if len(ok) == 1 && i == ok[0] {
								want = store.ErrRefreshRevoked
							}
							if !errors.Is(err, want) {
								t.Errorf("successor %d after reuse: err = %v, want %v", i, err, want)
							}
						}
						return
					}
					if len(ok) != n {
						t.Errorf("%d successes, want %d grace retries", len(ok), n)
					}
					live, err := s.LiveRefreshHashesForTest(testContext(t), sess.id)
					if err != nil {
						t.Fatalf("live tokens: %v", err)
					}
					if len(live) != 1 {
						t.Fatalf("%d live successors, want exactly 1", len(live))
					}
					winner := -1
					for i := range n {
						if bytes.Equal(hashes[i], live[0]) {
							winner = i
						}
					}
					if winner < 0 {
						t.Fatal("the live token is none of the successors issued")
					}
					if _, _, err := rotate(t, s, hashes[winner], time.Now(), 0); err != nil {
						t.Errorf("the live successor does not rotate: %v", err)
					}
				})
			}
		})
	}
}
