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
