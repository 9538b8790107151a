package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPasswordSemaphore fills the semaphore by hand (a black-box test could
// only do it with a race) and checks that hashing waits for a slot, gives up
// with ctx, and proceeds once a slot frees.
func TestPasswordSemaphore(t *testing.T) {
	p, err := NewPasswords(PasswordOptions{Params: Argon2Params{Memory: 64, Time: 1}, MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cap(p.sem) != 1 {
		t.Fatalf("semaphore capacity = %d", cap(p.sem))
	}
	h, err := p.Hash(t.Context(), "pw pw pw pw")
	if err != nil {
		t.Fatal(err)
	}
	p.sem <- struct{}{} // every slot taken

	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Hash(short, "pw pw pw pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with no free slot: %v", err)
	}
	if _, err := p.Verify(short, h, "pw pw pw pw"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify with no free slot: %v", err)
	}
	p.VerifyDummy(short, "pw pw pw pw") // returns once ctx is done

	ctx, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	done := make(chan error, 1)
	go func() {
		ok, err := p.Verify(ctx, h, "pw pw pw pw")
		if err == nil && !ok {
			err = errors.New("mismatch")
		}
		done <- err
	}()
	<-p.sem // free the slot: the waiting Verify may now run
	if err := <-done; err != nil {
		t.Fatalf("Verify after a slot freed: %v", err)
	}
}

func TestPasswordDefaultConcurrency(t *testing.T) {
	p, err := NewPasswords(PasswordOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cap(p.sem) < 2 {
		t.Fatalf("default MaxConcurrent = %d, want 2*GOMAXPROCS", cap(p.sem))
	}
}
