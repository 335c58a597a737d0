package sem_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/shmpc/shmpc/sem"
)

// stuckBound is how long a concurrency round may take before it counts as
// stuck (a lost wake-up leaves a waiter asleep for ever).
const stuckBound = 20 * time.Second

// TestConcurrentConservation runs, on one semaphore, goroutines that post,
// goroutines that wait with context.Background (they can only leave by
// taking a token), goroutines that wait with short deadlines or TryWait
// (they may take a token or give up), and a second process that posts and
// waits with goroutines of its own. Posts are planned so that every
// uncancellable wait can be served whatever the others take. It checks:
// every goroutine and the helper process finish (no wake-up lost, nobody
// stuck: a watchdog closes the semaphore and fails the test otherwise), the
// final value is exactly posts minus successful takes (counts conserved), and
// no waiter is left registered (nwaiters bookkeeping on every exit path).
func TestConcurrentConservation(t *testing.T) {
	var sleeps uint64 // futex sleeps in this process over all rounds
	defer func() {
		// The property is only interesting if waiters really slept.
		t.Logf("waiters in this process slept in the kernel %d times", sleeps)
		if sleeps == 0 && !t.Failed() {
			t.Error("no Wait ever slept in the kernel: the slow path was not exercised")
		}
	}()
	rapid.Check(t, func(rt *rapid.T) {
		name := fmt.Sprintf("/shmpc-semtest.%d.%08x", os.Getpid(), rand.Uint32())
		s, err := sem.Create(name, 0, 0o600)
		if err != nil {
			rt.Fatal(err)
		}
		rt.Cleanup(func() {
			s.Close()
			sem.Unlink(name)
		})
		maxOps := 60
		if raceEnabled {
			maxOps = 20
		}
		waiters := rapid.SliceOfN(rapid.IntRange(1, maxOps), 1, 4).Draw(rt, "waiter_counts")
		triers := rapid.SliceOfN(rapid.IntRange(1, maxOps), 0, 2).Draw(rt, "trier_counts")
		deadliners := rapid.SliceOfN(rapid.IntRange(1, maxOps/4), 0, 2).Draw(rt, "deadline_waiter_counts")
		helperWaits := rapid.IntRange(0, maxOps).Draw(rt, "helper_waits")
		helperPosts := rapid.IntRange(0, maxOps).Draw(rt, "helper_posts")
		helperGoroutines := rapid.IntRange(1, 3).Draw(rt, "helper_goroutines")
		posters := rapid.IntRange(1, 4).Draw(rt, "posters")

		// Enough tokens for every attempt that could take one.
		need := sum(waiters) + sum(triers) + sum(deadliners) + helperWaits
		goPosts := max(need-helperPosts, 0) + rapid.IntRange(0, 5).Draw(rt, "surplus")
		totalPosts := goPosts + helperPosts

		var taken atomic.Int64 // successful takes in this process
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		report := func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
		start := make(chan struct{})
		for _, n := range waiters {
			wg.Go(func() {
				<-start
				for range n {
					if err := s.Wait(context.Background()); err != nil {
						report(fmt.Errorf("Wait(Background): %w", err))
						return
					}
					taken.Add(1)
				}
			})
		}
		for _, n := range triers {
			wg.Go(func() {
				<-start
				for range n {
					ok, err := s.TryWait()
					if err != nil {
						report(fmt.Errorf("TryWait: %w", err))
						return
					}
					if ok {
						taken.Add(1)
					}
					runtime.Gosched()
				}
			})
		}
		for _, n := range deadliners {
			wg.Go(func() {
				<-start
				for i := range n {
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
					err := s.Wait(ctx)
					cancel()
					switch {
					case err == nil:
						taken.Add(1)
					case errors.Is(err, context.DeadlineExceeded):
					default:
						report(fmt.Errorf("Wait(deadline): %w", err))
						return
					}
				}
			})
		}
		perPoster := splitCount(goPosts, posters)
		for _, n := range perPoster {
			wg.Go(func() {
				<-start
				for i := range n {
					if err := s.Post(); err != nil {
						report(fmt.Errorf("Post: %w", err))
						return
					}
					if i%8 == 0 {
						time.Sleep(50 * time.Microsecond) // let waiters fall asleep
					}
				}
			})
		}
		helper := startHelper(rt, "stress", name, strconv.Itoa(helperPosts), strconv.Itoa(helperWaits), strconv.Itoa(helperGoroutines))
		close(start)

		finished := make(chan struct{})
		go func() {
			wg.Wait()
			close(finished)
		}()
		watchdog := time.NewTimer(stuckBound)
		defer watchdog.Stop()
		select {
		case <-finished:
		case <-watchdog.C:
			v, _ := s.Value()
			n, _ := s.Waiters()
			s.Close() // wakes every stuck Wait so the goroutines can end
			<-finished
			rt.Fatalf("goroutines stuck after %v: value %d, nwaiters %d, taken %d of %d posts", stuckBound, v, n, taken.Load(), totalPosts)
		}
		if !helper.exitedWithin(stuckBound) {
			v, _ := s.Value()
			n, _ := s.Waiters()
			rt.Fatalf("helper process stuck after %v: value %d, nwaiters %d", stuckBound, v, n)
		}
		if err := helper.wait(rt, time.Second); err != nil {
			rt.Fatalf("helper process: %v", err)
		}
		helper.expectLine(rt, time.Second, "ok")
		close(errs)
		for err := range errs {
			rt.Fatal(err)
		}
		want := uint32(totalPosts - int(taken.Load()) - helperWaits)
		if v := mustValue(rt, s); v != want {
			rt.Fatalf("value %d after %d posts, %d takes here and %d in the helper; want %d", v, totalPosts, taken.Load(), helperWaits, want)
		}
		if n := mustWaiters(rt, s); n != 0 {
			rt.Fatalf("nwaiters %d after every waiter left", n)
		}
		if err := s.Check(); err != nil {
			rt.Fatal(err)
		}
		sleeps += s.Sleeps()
	})
}

// stressHelper is the helper process of TestConcurrentConservation:
// "stress NAME POSTS WAITS GOROUTINES" posts POSTS times and waits WAITS
// times (each wait bounded by stuckBound), with GOROUTINES goroutines that
// only post and as many that only wait, then prints "ok".
func stressHelper(args []string) int {
	posts, _ := strconv.Atoi(args[1])
	waits, _ := strconv.Atoi(args[2])
	goroutines, _ := strconv.Atoi(args[3])
	s, err := sem.Open(args[0])
	if err != nil {
		fmt.Printf("err %v\n", err)
		return 1
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), stuckBound)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Bool
	// Posters never wait, so every post happens whatever the waiters do.
	for _, n := range splitCount(posts, goroutines) {
		wg.Go(func() {
			for range n {
				if err := s.Post(); err != nil {
					fmt.Printf("err post: %v\n", err)
					failed.Store(true)
					return
				}
				if rand.IntN(4) == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		})
	}
	for _, n := range splitCount(waits, goroutines) {
		wg.Go(func() {
			for range n {
				if err := s.Wait(ctx); err != nil {
					fmt.Printf("err wait: %v\n", err)
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return 1
	}
	fmt.Println("ok")
	return 0
}

// splitCount splits n into parts nearly equal shares.
func splitCount(n, parts int) []int {
	out := make([]int, parts)
	for i := range out {
		out[i] = n / parts
		if i < n%parts {
			out[i]++
		}
	}
	return out
}

func sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}
