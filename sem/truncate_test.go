package sem_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmpc/shmpc/sem"
)

// TestTruncatedWhileOpen: someone with write access truncates the file of
// an open semaphore. C would die of SIGBUS at its next sem_post; every
// method here returns an error matching ErrInvalid instead, and Close
// still works.
func TestTruncatedWhileOpen(t *testing.T) {
	s, name := mustCreate(t, 1)
	path, err := sem.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	checks := map[string]error{}
	checks["Post"] = s.Post()
	_, checks["TryWait"] = s.TryWait()
	_, checks["Value"] = s.Value()
	_, checks["Waiters"] = s.Waiters()
	checks["Check"] = s.Check()
	checks["Wait"] = s.Wait(ctx)
	for op, err := range checks {
		if !errors.Is(err, sem.ErrInvalid) {
			t.Errorf("%s on a truncated semaphore: got %v, want an error matching ErrInvalid", op, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestTruncatedUnderASleeper: a Wait asleep on a semaphore whose file is
// truncated cannot be woken by a post or a cancel (the futex's page is
// gone); it still ends, with an error, within a second of its context's
// end.
func TestTruncatedUnderASleeper(t *testing.T) {
	s, name := mustCreate(t, 0)
	path, err := sem.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- s.Wait(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.Sleeps() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter did not go to sleep within 5s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	cancel()
	start := time.Now()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("Wait on a truncated semaphore returned nil")
		}
		t.Logf("Wait ended after %v: %v", time.Since(start), err)
	case <-time.After(3 * time.Second):
		t.Fatal("Wait asleep on a truncated semaphore did not end within 3s of its context's end")
	}
}
