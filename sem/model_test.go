package sem_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/shmpc/shmpc/sem"
)

// TestStateMachine drives one named semaphore through several handles with
// random Post, TryWait, Wait (short deadline or an ended context), Value,
// Close, reopen and second-handle actions, against a model that is one
// counter. After every step every handle must agree with the model, no
// waiter may be left registered, Check must pass, and the file's 32 bytes
// must be exactly the image glibc would hold for the model's value.
//
// That image comes from the package's own encoder (sem.Image), so this test
// proves the package consistent with itself, not with glibc: only
// TestInterop and its siblings in interop_test.go, which run C programs
// calling glibc's sem_open on the same files, prove glibc's layout. CI sets
// SHMPC_REQUIRE_GCC=1 so that those fail rather than skip without gcc.
func TestStateMachine(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		name := fmt.Sprintf("/shmpc-semtest.%d.%08x", os.Getpid(), rand.Uint32())
		path, err := sem.Path(name)
		if err != nil {
			rt.Fatal(err)
		}
		// Start near zero or near SEM_VALUE_MAX, so overflow is reachable.
		initial := rapid.OneOf(
			rapid.Uint32Range(0, 4),
			rapid.Uint32Range(sem.ValueMax-3, sem.ValueMax),
		).Draw(rt, "initial")
		first, err := sem.Create(name, initial, 0o600)
		if err != nil {
			rt.Fatalf("Create: %v", err)
		}
		handles := []*sem.Semaphore{first}
		rt.Cleanup(func() {
			for _, h := range handles {
				h.Close()
			}
			if err := sem.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				rt.Errorf("unlink: %v", err)
			}
		})
		model := initial

		pick := func(rt *rapid.T) *sem.Semaphore {
			return handles[rapid.IntRange(0, len(handles)-1).Draw(rt, "handle")]
		}
		rt.Repeat(map[string]func(*rapid.T){
			"Post": func(rt *rapid.T) {
				err := pick(rt).Post()
				if model == sem.ValueMax {
					if !errors.Is(err, sem.ErrOverflow) {
						rt.Fatalf("Post at SEM_VALUE_MAX: got %v, want ErrOverflow", err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("Post: %v", err)
				}
				model++
			},
			"TryWait": func(rt *rapid.T) {
				ok, err := pick(rt).TryWait()
				if err != nil {
					rt.Fatalf("TryWait: %v", err)
				}
				if ok != (model > 0) {
					rt.Fatalf("TryWait = %v with model value %d", ok, model)
				}
				if ok {
					model--
				}
			},
			"WaitDeadline": func(rt *rapid.T) {
				d := time.Duration(rapid.IntRange(1, 3).Draw(rt, "deadline_ms")) * time.Millisecond
				if model > 0 {
					// A token is there: Wait must take it at once. A long
					// deadline keeps a loaded machine from ending the
					// context before the call.
					d = time.Minute
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				err := pick(rt).Wait(ctx)
				if model > 0 {
					if err != nil {
						rt.Fatalf("Wait with value %d: %v", model, err)
					}
					model--
					return
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					rt.Fatalf("Wait on zero: got %v, want DeadlineExceeded", err)
				}
				if el := time.Since(start); el < d || el > d+time.Second {
					rt.Fatalf("Wait with deadline %v returned after %v", d, el)
				}
			},
			"WaitTimeout": func(rt *rapid.T) {
				d := time.Duration(rapid.IntRange(0, 3).Draw(rt, "timeout_ms")) * time.Millisecond
				start := time.Now()
				ok, err := pick(rt).WaitTimeout(d)
				if err != nil {
					rt.Fatalf("WaitTimeout(%v) with value %d: %v", d, model, err)
				}
				if ok != (model > 0) {
					rt.Fatalf("WaitTimeout(%v) = %v with model value %d", d, ok, model)
				}
				if ok {
					model--
					return
				}
				if el := time.Since(start); el < d || el > d+time.Second {
					rt.Fatalf("WaitTimeout(%v) on zero returned after %v", d, el)
				}
			},
			"WaitEndedContext": func(rt *rapid.T) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := pick(rt).Wait(ctx); !errors.Is(err, context.Canceled) {
					rt.Fatalf("Wait with an ended context: got %v, want Canceled", err)
				}
			},
			"Value": func(rt *rapid.T) {
				v, err := pick(rt).Value()
				if err != nil || v != model {
					rt.Fatalf("Value = %d, %v; model %d", v, err, model)
				}
			},
			"OpenSecond": func(rt *rapid.T) {
				if len(handles) >= 3 {
					rt.Skip("enough handles")
				}
				h, err := sem.Open(name)
				if err != nil {
					rt.Fatalf("Open: %v", err)
				}
				handles = append(handles, h)
			},
			"CloseReopen": func(rt *rapid.T) {
				i := rapid.IntRange(0, len(handles)-1).Draw(rt, "close")
				h := handles[i]
				if err := h.Close(); err != nil {
					rt.Fatalf("Close: %v", err)
				}
				checkClosed(rt, h)
				reopen := len(handles) == 1 || rapid.Bool().Draw(rt, "reopen")
				handles = append(handles[:i], handles[i+1:]...)
				if reopen {
					h, err := sem.Open(name)
					if err != nil {
						rt.Fatalf("reopen: %v", err)
					}
					handles = append(handles, h)
				}
			},
			"": func(rt *rapid.T) {
				for i, h := range handles {
					v, err := h.Value()
					if err != nil || v != model {
						rt.Fatalf("handle %d: Value = %d, %v; model %d", i, v, err, model)
					}
					if n, err := h.Waiters(); err != nil || n != 0 {
						rt.Fatalf("handle %d: Waiters = %d, %v; want 0", i, n, err)
					}
					if err := h.Check(); err != nil {
						rt.Fatalf("handle %d: Check: %v", i, err)
					}
				}
				got, err := os.ReadFile(path)
				if err != nil {
					rt.Fatal(err)
				}
				if want := sem.Image(model); string(got) != string(want[:]) {
					rt.Fatalf("file bytes\n% x\nwant\n% x", got, want)
				}
			},
		})
	})
}

// checkClosed verifies that every method of a closed Semaphore returns an
// error matching ErrClosed and that Close stays idempotent.
func checkClosed(t interface{ Fatalf(string, ...any) }, h *sem.Semaphore) {
	if err := h.Post(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Post after Close: %v", err)
	}
	if _, err := h.TryWait(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("TryWait after Close: %v", err)
	}
	if err := h.Wait(context.Background()); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
	if _, err := h.Value(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Value after Close: %v", err)
	}
	if _, err := h.Waiters(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Waiters after Close: %v", err)
	}
	if err := h.Check(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Check after Close: %v", err)
	}
	if _, _, err := h.Owner(); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("Owner after Close: %v", err)
	}
	if err := h.CheckOwner(os.Getuid(), 0o600); !errors.Is(err, sem.ErrClosed) {
		t.Fatalf("CheckOwner after Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
