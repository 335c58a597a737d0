package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmpc/shmpc/internal/crc32c"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
)

// Run delivers items to h until the stream ends and is drained (then it
// returns nil), h or verification fails (the error; ErrIntegrity for a
// bad item, which is not delivered), the producer is lost (a
// *PeerLostError, matching ErrPeerLost), or ctx ends. When ctx ends, Run
// stops acquiring, lets the workers finish and release the items in
// flight, and returns ctx's error, wrapped: a graceful stop (a context that
// ended before the call returns at once). Run may be called once; a second
// call returns ErrRan. A Close from another goroutine stops Run the same
// way and waits for it; Run then returns ErrClosed.
func (c *Consumer) Run(ctx context.Context, h Handler) (err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("run: %w", ErrClosed)
	}
	if c.ran {
		c.mu.Unlock()
		return fmt.Errorf("run: %w", ErrRan)
	}
	c.ran = true
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("run %s: %w", c.names.Ring, err)
	}
	ctx, stopRun := context.WithCancelCause(ctx)
	c.stopRun, c.runDone = stopRun, make(chan struct{})
	c.mu.Unlock()
	defer func() {
		stopRun(nil)
		close(c.runDone)
	}()
	if c.opt.Ordered {
		return c.runOrdered(ctx, h)
	}
	space, items := c.bells()

	var (
		failOnce sync.Once
		failErr  error
		stopped  = make(chan struct{})
	)
	// waitCtx ends the dispatcher's sleep on an empty ring when a worker
	// fails, as well as when ctx ends.
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	fail := func(err error) {
		failOnce.Do(func() {
			failErr = err
			close(stopped)
			cancelWait()
		})
	}
	isStopped := func() bool {
		select {
		case <-stopped:
			return true
		default:
		}
		return false
	}
	// A sleep on an empty ring is armed, not watched: a change of the
	// producer's presence and every Recheck kick our own doorbell.
	c.watch.Start(func() { _ = items.Kick() }, ringobj.Recheck)
	defer c.watch.Stop()
	// The end of waitCtx kicks it too: once per run, not once per sleep.
	stopKick := context.AfterFunc(waitCtx, func() { _ = items.Kick() })
	defer stopKick()

	// process verifies, handles and releases one item; it returns the
	// release time (UnixNano; 0 when it failed), which the dispatcher also
	// uses to time the item.
	process := func(it ring.Item, buf []byte) int64 {
		data, err := c.check(it, buf)
		if err != nil {
			fail(err)
			return 0
		}
		if err := h(it.Seq, data); err != nil {
			fail(fmt.Errorf("handler for item %d: %w", it.Seq, err))
			return 0
		}
		if err := c.rd.Release(it.Seq); err != nil {
			fail(fmt.Errorf("release item %d: %w", it.Seq, err))
			return 0
		}
		now := c.released(uint64(len(data)))
		if err := space.Ring(); err != nil {
			fail(fmt.Errorf("wake producer: %w", err))
		}
		return now
	}
	newBuf := func() []byte {
		if c.opt.Copy {
			return make([]byte, c.ring.SlotSize())
		}
		return nil
	}

	// Helpers take items the dispatcher hands them: only when more items
	// wait behind the one it acquired, a helper is idle, and items take
	// long enough to handle (the last one the dispatcher handled took
	// handOffMin or more) that waking a helper pays. idle counts the
	// helpers waiting for an item that none was handed yet.
	helpers := c.opt.Workers - 1
	var (
		work chan ring.Item
		idle atomic.Int32
		wg   sync.WaitGroup
	)
	if helpers > 0 {
		work = make(chan ring.Item, c.ring.Slots())
		for range helpers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := newBuf()
				for {
					idle.Add(1)
					it, ok := <-work
					if !ok {
						return
					}
					if isStopped() {
						continue // not released: a successor consumer gets it
					}
					process(it, buf)
				}
			}()
		}
	}
	buf := newBuf()
	slow := false // the last item handled here took handOffMin or more

	ended := false
	var runErr error
dispatch:
	for !isStopped() && ctx.Err() == nil {
		it, err := c.rd.Acquire()
		switch {
		case err == nil:
			if helpers > 0 && slow && idle.Load() > 0 && c.ring.Head() > it.Seq+1 {
				idle.Add(-1)
				work <- it // never blocks: at most Slots items are acquired
			} else if helpers == 0 {
				process(it, buf)
			} else {
				t0 := time.Now().UnixNano()
				slow = process(it, buf)-t0 >= int64(handOffMin)
			}
		case errors.Is(err, ring.ErrEmpty):
			if err := c.waitItems(waitCtx, items); err != nil {
				runErr = err
				break dispatch
			}
		case errors.Is(err, io.EOF):
			ended = true
			break dispatch
		default:
			fail(fmt.Errorf("acquire from %s: %w", c.names.Ring, err))
		}
	}
	if work != nil {
		close(work)
	}
	wg.Wait()
	if failErr != nil {
		return failErr
	}
	if runErr != nil {
		var gone errProducerGone
		if errors.As(runErr, &gone) {
			runErr = c.peerLost("producer of "+c.names.Ring+" "+gone.what, c.rd.Next())
			c.removeIfProducerGone()
		}
		if ctx.Err() != nil && errors.Is(runErr, ctx.Err()) {
			return c.stoppedBy(ctx) // graceful stop
		}
		return runErr
	}
	if !ended {
		return c.stoppedBy(ctx) // ctx ended: graceful stop
	}
	return c.finish()
}

// finish ends a consumer that took every item of an ended stream and
// released them all: it calls Options.BeforeDrain, marks the ring drained,
// tells the producer (shutdown), and waits for the producer to remove the
// ring.
func (c *Consumer) finish() error {
	if h := c.opt.BeforeDrain; h != nil {
		if err := h(); err != nil {
			return fmt.Errorf("before the drain (left to the next consumer): %w", err)
		}
	}
	c.ring.SetDrained()
	c.drained = true
	if err := c.sems.Shutdown.Post(); err != nil {
		return fmt.Errorf("post shutdown: %w", err)
	}
	c.awaitCleanup()
	return nil
}

// check verifies an acquired item and returns the bytes to deliver: the
// slot itself, or with buf (Options.Copy) the private copy in buf, copied
// and checksummed in one pass (crc32c.CopyUpdateDst checksums what it
// stores into buf: the checksum is that of the
// copy, whatever a writer does to the slot meanwhile). The fast checksum
// only decides that an item is good; a mismatch is confirmed (and
// counted) by the ring's own check.
func (c *Consumer) check(it ring.Item, buf []byte) ([]byte, error) {
	if checkHook != nil {
		defer checkHook(it.Seq)()
	}
	var crc uint32
	if buf != nil {
		crc = crc32c.CopyUpdateDst(0, buf, it.Data)
		it.Data = buf[:len(it.Data)]
	} else {
		crc = crc32c.Checksum(it.Data)
	}
	if crc != it.CRC {
		if err := c.rd.Verify(it); err != nil {
			c.badItems.Add(1)
			return nil, fmt.Errorf("item %d of %s: %w", it.Seq, c.names.Ring, err)
		}
	}
	return it.Data, nil
}

// checkHook, when set (by tests only), is called as check begins and
// what it returns as check ends.
var checkHook func(seq uint64) func()

// stoppedBy is Run's error after a graceful stop: ErrClosed when Close
// stopped it, else the context's error, wrapped.
func (c *Consumer) stoppedBy(ctx context.Context) error {
	if context.Cause(ctx) == ErrClosed {
		return fmt.Errorf("run: %w", ErrClosed)
	}
	return fmt.Errorf("run %s: stopped: %w", c.names.Ring, ctx.Err())
}

// handOffMin is how long handling an item must take for the dispatcher to
// hand the next ones to helpers: waking a parked goroutine's thread costs a
// futex call and a context switch, some microseconds, more in a virtual
// machine, and a helper competes for the CPUs with the producer.
const handOffMin = 50 * time.Microsecond
