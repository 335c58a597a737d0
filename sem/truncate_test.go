package sem_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestTruncatedWhileOpening: the file is long enough when Open looks at it
// with fstat and truncated before Open's first read of the mapping (a
// squatter toggling a 0666 file's size can hit that window at will). Open
// must return an error matching ErrInvalid; before the read ran under the
// fault guard, the process died of SIGBUS here.
func TestTruncatedWhileOpening(t *testing.T) {
	s, name := mustCreate(t, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	hits := 0
	sem.SetAfterMap(func(fd int) {
		hits++
		if err := unix.Ftruncate(fd, 0); err != nil {
			t.Errorf("truncate: %v", err)
		}
	})
	t.Cleanup(func() { sem.SetAfterMap(nil) })
	for op, open := range map[string]func() (*sem.Semaphore, error){
		"Open":         func() (*sem.Semaphore, error) { return sem.Open(name) },
		"OpenOrCreate": func() (*sem.Semaphore, error) { return sem.OpenOrCreate(name, 0, 0o600) },
	} {
		path, _ := sem.Path(name)
		if err := os.WriteFile(path, func() []byte { b := sem.Image(1); return b[:] }(), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := open()
		if !errors.Is(err, sem.ErrInvalid) {
			if got != nil {
				got.Close()
			}
			t.Errorf("%s of a file truncated after fstat: %v, want ErrInvalid", op, err)
			continue
		}
		t.Logf("%s: %v", op, err)
	}
	if hits != 2 {
		t.Errorf("the hook ran %d times, want 2: the window was not reached", hits)
	}
}
