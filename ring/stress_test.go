package ring

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStressSPSC runs a producer and a consumer goroutine on one heap buffer (where the
// race detector sees every access), with workers that verify each item, check its
// payload and release items out of order. Every item must arrive exactly once, intact.
func TestStressSPSC(t *testing.T) {
	items := 1_000_000
	if raceEnabled {
		items = 200_000
	}
	if testing.Short() {
		items /= 10
	}
	const (
		slots    = 64
		slotSize = 128
		workers  = 4
		limit    = 60 * time.Second
	)
	r, _ := newRing(t, slots, slotSize)
	lenOf := func(seq uint64) int { return int(seq%slotSize) + 1 }

	var stop atomic.Bool // set on the first failure or when the time limit passes
	stopc := make(chan struct{})
	var once sync.Once
	errc := make(chan error, workers+3)
	fail := func(err error) {
		stop.Store(true)
		once.Do(func() { close(stopc) })
		errc <- err
	}
	timer := time.AfterFunc(limit, func() { fail(fmt.Errorf("no completion within %v", limit)) })
	defer timer.Stop()

	seen := make([]atomic.Uint32, items)
	var outOfOrder atomic.Uint64
	var wg sync.WaitGroup

	wg.Add(1)
	go func() { // producer: half the items through CopyCRC from a private buffer
		defer wg.Done()
		w := r.Writer()
		src := make([]byte, slotSize)
		for seq := uint64(0); seq < uint64(items); {
			if stop.Load() {
				return
			}
			s, err := w.Reserve()
			if err == ErrFull {
				runtime.Gosched()
				continue
			}
			if err != nil || s.Seq != seq {
				fail(fmt.Errorf("producer: Reserve: seq %d want %d: %v", s.Seq, seq, err))
				return
			}
			n := lenOf(seq)
			if seq%2 == 0 {
				fill(src[:n], seq)
				err = w.CommitCRC(n, CopyCRC(s.Buf, src[:n]))
			} else {
				fill(s.Buf[:n], seq)
				err = w.Commit(n)
			}
			if err != nil {
				fail(fmt.Errorf("producer: commit %d: %v", seq, err))
				return
			}
			seq++
		}
		if err := w.End(); err != nil {
			fail(fmt.Errorf("producer: End: %v", err))
		}
	}()

	rd := r.Reader()
	work := make(chan Item, slots)
	wg.Add(1)
	go func() { // consumer: acquire in order, hand out to the workers
		defer wg.Done()
		defer close(work)
		for !stop.Load() {
			var it Item
			var err error
			if rd.Next()%3 == 0 { // copying mode for a third of the items
				it, err = rd.AcquireCopy(make([]byte, slotSize))
			} else {
				it, err = rd.Acquire()
			}
			switch {
			case err == ErrEmpty:
				runtime.Gosched()
				continue
			case err == io.EOF:
				return
			case err != nil:
				fail(fmt.Errorf("consumer: Acquire: %v", err))
				return
			}
			select {
			case work <- it:
			case <-stopc:
				return
			}
		}
	}()

	for k := range workers {
		wg.Add(1)
		go func() { // worker: verify, check, and release in a shuffled order
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(k), 42))
			var hold []uint64
			var maxReleased uint64
			release := func() bool {
				rng.Shuffle(len(hold), func(i, j int) { hold[i], hold[j] = hold[j], hold[i] })
				for _, seq := range hold {
					if seq < maxReleased {
						outOfOrder.Add(1)
					}
					maxReleased = max(maxReleased, seq)
					if err := rd.Release(seq); err != nil {
						fail(fmt.Errorf("worker: Release %d: %v", seq, err))
						return false
					}
				}
				hold = hold[:0]
				return true
			}
			for {
				var it Item
				var ok bool
				select {
				case it, ok = <-work:
				default: // nothing queued: give back what we hold, then wait
					if !release() {
						return
					}
					it, ok = <-work
				}
				if !ok {
					release()
					return
				}
				if err := rd.Verify(it); err != nil {
					fail(fmt.Errorf("worker: %v", err))
					return
				}
				if it.Seq >= uint64(items) || len(it.Data) != lenOf(it.Seq) || !checkPayload(it.Data, it.Seq) {
					fail(fmt.Errorf("worker: item %d has %d bytes or the wrong payload", it.Seq, len(it.Data)))
					return
				}
				seen[it.Seq].Add(1)
				hold = append(hold, it.Seq)
				if len(hold) >= 1+rng.IntN(4) && !release() {
					return
				}
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for seq := range seen {
		if n := seen[seq].Load(); n != 1 {
			t.Fatalf("item %d delivered %d times", seq, n)
		}
	}
	if r.Head() != uint64(items) || r.Tail() != uint64(items) || rd.Pending() != 0 {
		t.Fatalf("head %d tail %d pending %d, want %d %d 0", r.Head(), r.Tail(), rd.Pending(), items, items)
	}
	if st := r.Stats(); st.Items != uint64(items) || st.IntegrityErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
	if outOfOrder.Load() == 0 {
		t.Fatal("no item was released out of order: the test did not exercise the tail logic")
	}
	r.SetDrained()
	t.Logf("%d items in %v (%.0f ns/item), %d releases out of order", items, elapsed, float64(elapsed)/float64(items), outOfOrder.Load())
}
