// Package consumer is the reading side of a shmpc ring: it attaches to the
// ring NAME (waiting for its producer when started first), verifies every
// item's sequence number and CRC32C, hands the items to a handler on a pool
// of worker goroutines, releases them in ring order, and, at the end of the
// stream, tells the producer the stream is drained.
//
// # Delivery guarantee
//
// Without crashes every item is delivered exactly once. Across a consumer
// crash, delivery is at least once: a new consumer starts at the oldest
// unreleased item, so the items the dead one had acquired but not released
// (at most the ring's slot count) are delivered again. Handlers that must
// not see an item twice deduplicate by sequence number, which is dense and
// starts at 0. Items that fail verification are never delivered.
//
// A Consumer is used by one goroutine (Run); the handler runs on Run's
// goroutine and on up to Workers-1 helper goroutines, concurrently with
// itself unless Options.Ordered or Workers is 1.
//
// # Fast path
//
// Run handles an item on its own goroutine unless more items are already
// waiting behind it and a helper is idle: a consumer that keeps up with its
// producer then costs no hand-off between goroutines (and no wake-up of
// another thread) per item; one that falls behind spreads the backlog over
// the helpers. Items are verified with a VPCLMULQDQ CRC32C kernel where
// the CPU has one (internal/crc32c, the project's one CRC32C; hash/crc32 otherwise), and a
// mismatch is checked again by the ring before it counts as an integrity
// error. A consumer that finds the ring empty spins for Options.Spin, then
// sleeps on its semaphore armed: a monitor goroutine (started by Run, ended
// before it returns) watches the producer's role lock and its pidfd and
// posts the consumer's own semaphore when the producer goes (and once a
// second, in case a wake-up was lost to a scribbled doorbell word), so the
// sleep needs no watch, timer or goroutine of its own.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmpc/shmpc/internal/crc32c"
	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/peer"
	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

// Errors a caller acts on; match them with errors.Is.
var (
	ErrPeerLost  = ringobj.ErrPeerLost                           // the producer died and none came back in time (a *PeerLostError)
	ErrBusy      = ringobj.ErrBusy                               // another live consumer holds the ring
	ErrForeign   = ringobj.ErrForeign                            // the NAME's objects are not a usable ring
	ErrNoRing    = ringobj.ErrNoRing                             // no producer created the ring within Wait
	ErrIntegrity = ring.ErrIntegrity                             // an item failed verification (never delivered)
	ErrClosed    = error(&ringobj.ClosedError{Side: "consumer"}) // matches os.ErrClosed too
	// ErrRan: Run was called a second time (a Consumer runs once).
	ErrRan = errors.New("consumer already ran: Run may be called once")
)

// PeerLostError is the error of a consumer whose producer is gone: it
// matches ErrPeerLost, and errors.As finds it to read how many items were
// delivered and lost.
type PeerLostError = ringobj.PeerLostError

// DefaultWait is the default of Options.Wait.
const DefaultWait = 10 * time.Second

// NoWait as Options.Wait means: do not wait at all (Open fails at once
// when the ring is not there; a ring found orphaned is given up at once).
const NoWait time.Duration = -1

// Options configure a Consumer. The zero value means one worker per CPU,
// views into the slots, wait 10 s for the producer, peer timeout 0.
type Options struct {
	// Workers is the most goroutines that run the handler at once: Run's
	// own and Workers-1 helpers, which get items only when more are
	// waiting (default: runtime.NumCPU()).
	Workers int
	// Ordered calls the handler for one item at a time, in sequence order
	// (for output that must keep the stream's order, such as a pipe).
	Ordered bool
	// Copy verifies a private copy of each item and hands the handler that
	// copy, so what it sees is exactly what was verified even if someone
	// writes the segment afterwards (verify before delivering). It costs one
	// buffer of the slot size per worker and a copy per item.
	Copy bool
	// Wait bounds how long Open waits for a producer to create the ring
	// (0: DefaultWait; NoWait, or any negative value: not at all).
	Wait time.Duration
	// PeerTimeout is how long Run waits for a new producer after the
	// producer it saw died with the stream unfinished. 0: give up at once.
	// A consumer that attaches to a ring whose producer is already gone
	// waits up to Wait (from Open) for a new one instead.
	PeerTimeout time.Duration
	// StallTimeout treats a live producer that published nothing for this
	// long, while the consumer waited for it, as lost (0: never).
	StallTimeout time.Duration
	// Spin is how long a consumer that finds the ring empty keeps looking
	// at it, busy, before it sleeps on its semaphore. 0 (the default)
	// sleeps at once: the blocking wait. A spin saves the wake-up (a futex
	// call by the producer, a context switch here) when items come faster
	// than that, at the price of a busy CPU while it spins.
	Spin time.Duration
	// Logf receives notes worth telling a user. Nil discards them.
	Logf func(format string, args ...any)
}

// Handler processes one item. data is valid only until the handler
// returns. An error stops the consumer with that error; the item is not
// released (a successor consumer gets it again).
type Handler func(seq uint64, data []byte) error

// Stats are what one Consumer delivered.
type Stats struct {
	Items           uint64 // items handled and released
	Bytes           uint64
	IntegrityErrors uint64 // items that failed verification (not delivered)
	// Seconds is the time from the stream's first reserve (by the
	// producer) to this consumer's last release, when both are known.
	Seconds float64
}

// Consumer reads items from a ring it holds the consumer role of.
type Consumer struct {
	opt   Options
	names ringobj.Names
	lock  *lockfile.File
	seg   *shm.Segment
	sems  *ringobj.Sems
	ring  *ring.Ring
	rd    *ring.Reader
	watch *peer.Watcher

	items, bytes, badItems atomic.Uint64
	lastRelease            atomic.Int64
	firstReserve           atomic.Int64 // the producer's first Reserve (AppFirstReserve), read at the first release

	items0      uint64    // the ring's released-items counter at attach
	opened      time.Time // when Open began, for the first-producer wait
	producerGen uint64    // the producer claim generation at attach: a change means a producer came
	fastWait    bool      // the producer was present at the last judgement: sleep armed, without a watch
	drained     bool

	mu        sync.Mutex              // guards the fields below, for a Close from another goroutine
	ran       bool                    // Run or Next was called
	pull      *puller                 // the engine of Next and of an ordered Run
	closed    bool                    // Close was called
	stopRun   context.CancelCauseFunc // ends a Run in progress (cause ErrClosed)
	runDone   chan struct{}           // closed when that Run returned
	closeDone chan struct{}           // closed when the first Close has finished
}

// Open attaches to ring name and takes the consumer role. If the ring does
// not exist yet it waits up to opt.Wait for a producer to create it.
// Another live consumer on the ring is refused with ErrBusy.
func Open(ctx context.Context, name string, opt Options) (_ *Consumer, err error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open consumer for %s: %w", name, err)
	}
	switch {
	case opt.Wait == 0:
		opt.Wait = DefaultWait
	case opt.Wait < 0:
		opt.Wait = 0 // NoWait: one look
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	names, err := ringobj.For(name)
	if err != nil {
		return nil, fmt.Errorf("open consumer: %w", err)
	}
	c := &Consumer{opt: opt, names: names, opened: time.Now()}
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	deadline := time.Now().Add(opt.Wait)
	var ready *sem.Semaphore
	defer func() {
		if ready != nil {
			ready.Close()
		}
	}()
	for attempt := 0; ; attempt++ {
		done, err := c.tryAttach()
		if done || err != nil {
			if err == nil {
				break
			}
			return nil, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return nil, fmt.Errorf("no producer created ring %s within %v: %w", name, opt.Wait, ErrNoRing)
		}
		// Sleep on `ready` once it exists (the producer posts it when the
		// ring is formatted); the header is the truth, so a stale post
		// only makes us look once more. Before it exists, poll gently.
		if ready == nil {
			ready, _ = sem.Open(names.Ready)
		}
		step := min(deadline.Sub(now), 100*time.Millisecond)
		if ready == nil {
			step = min(step, time.Duration(1+min(attempt, 20))*time.Millisecond)
			select {
			case <-time.After(step):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, step)
		_ = ready.Wait(wctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	self := proc.Self()
	prev := c.ring.ConsumerID()
	c.ring.SetConsumerID(ring.Identity{PID: uint32(self.PID), Start: self.Start, Gen: prev.Gen + 1})
	c.rd = c.ring.Reader()
	c.items0 = c.ring.Stats().Items
	c.producerGen = c.ring.ProducerID().Gen
	c.watch = peer.New(c.lock, lockfile.Producer, func() proc.ID {
		id := c.ring.ProducerID()
		return proc.ID{PID: int(id.PID), Start: id.Start}
	})
	// Look once now: a producer alive at attach is one we have seen, so
	// its death later counts as a death (PeerTimeout), not as a ring found
	// orphaned (Wait), even if Run never has to wait for an item before.
	c.watch.Present()
	return c, nil
}

// tryAttach makes one attempt to take the consumer role and attach the
// ring. It returns done=false, err=nil when the ring is not there yet.
func (c *Consumer) tryAttach() (done bool, err error) {
	if c.lock == nil {
		l, err := ringobj.ClaimRole(c.names, lockfile.Consumer, false, 0, -1)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if errors.Is(err, lockfile.ErrHeld) {
			return false, fmt.Errorf("ring %s already has a live consumer%s: %w", c.names.Ring, c.holder(), ErrBusy)
		}
		if err != nil {
			return false, fmt.Errorf("open consumer for %s: %w", c.names.Ring, err)
		}
		c.lock = l
	}
	// Nobody removes a lock file while we hold a role on it (lockfile's
	// rule), but a process that does not keep the rule may have: start
	// over with the path's current file.
	if stale, err := c.lock.Stale(); err != nil || stale {
		c.lock.Close()
		c.lock = nil
		return false, err
	}
	info, err := shm.Lookup(c.names.Key)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up segment of %s: %w", c.names.Ring, err)
	}
	lockUID, _, err := c.lock.Stat()
	if err != nil {
		return false, err
	}
	if info.UID != lockUID || info.CUID != lockUID {
		return false, fmt.Errorf("segment key %#x of ring %s is owned by uid %d and was created by uid %d, its lock file is owned by uid %d; "+
			"it is not this ring's: let its creator remove it, or use another -name: %w",
			c.names.Key, c.names.Ring, info.UID, info.CUID, lockUID, ErrForeign)
	}
	// Attach without pre-touching: a segment is validated before its pages
	// are faulted in (and charged to this process).
	seg, err := shm.AttachID(info.ID, false, shm.Options{Lock: shm.Off})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // removed in between
		}
		return false, fmt.Errorf("attach segment of %s: %w", c.names.Ring, err)
	}
	r, err := ring.Open(seg.Bytes())
	if errors.Is(err, ring.ErrNotFormatted) {
		seg.Detach()
		return false, nil // the producer is formatting it
	}
	if err != nil {
		seg.Detach()
		return false, fmt.Errorf("segment key %#x is not a usable shmpc ring: %w (%w)", c.names.Key, err, ErrForeign)
	}
	if r.Name() != c.names.Ring || int(r.OwnerUID()) != lockUID {
		seg.Detach()
		return false, fmt.Errorf("segment key %#x holds ring %q of uid %d, not %q of uid %d: %w",
			c.names.Key, r.Name(), r.OwnerUID(), c.names.Ring, lockUID, ErrForeign)
	}
	sems, err := ringobj.OpenSems(c.names, false, 0o777, lockUID)
	if err != nil {
		seg.Detach()
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if err := seg.Setup(shm.Options{Lock: shm.Off, Pretouch: true}); err != nil {
		sems.Close()
		seg.Detach()
		return false, fmt.Errorf("attach segment of %s: %w", c.names.Ring, err)
	}
	c.seg, c.ring, c.sems = seg, r, sems
	return true, nil
}

func (c *Consumer) holder() string {
	// Only a segment that is one uid's (owner and creator) is read: a
	// handed-over one is someone's attack, and not worth a message.
	info, err := shm.Lookup(c.names.Key)
	if err != nil || info.UID != info.CUID {
		return ""
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return ""
	}
	defer seg.Detach()
	r, err := ring.Open(seg.Bytes())
	if err != nil || r.Name() != c.names.Ring || r.ConsumerID().PID == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", r.ConsumerID().PID)
}

// Ring returns the ring the consumer reads (for stats and inspection),
// valid until Close.
func (c *Consumer) Ring() *ring.Ring { return c.ring }

// Pages returns "huge" or "normal": how the producer backed the segment.
// Call it before Close.
func (c *Consumer) Pages() string {
	if c.ring.Flags()&ring.FlagHuge != 0 {
		return "huge"
	}
	return "normal"
}

// Stats returns what this consumer delivered so far. It may be called at
// any time, also during Run and after Close.
func (c *Consumer) Stats() Stats {
	s := Stats{Items: c.items.Load(), Bytes: c.bytes.Load(), IntegrityErrors: c.badItems.Load()}
	first, last := c.firstReserve.Load(), c.lastRelease.Load()
	if first > 0 && last > first {
		s.Seconds = float64(last-first) / 1e9
	}
	return s
}

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
	space := ringobj.Bell{Waiting: c.ring.ProducerWaiting(), Sem: c.sems.Empty}
	items := ringobj.Bell{Waiting: c.ring.ConsumerWaiting(), Sem: c.sems.Filled}

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
// released them all: it marks the ring drained, tells the producer
// (shutdown), and waits for the producer to remove the ring.
func (c *Consumer) finish() error {
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

// cleanupWait bounds how long a consumer that drained the stream waits
// for its producer to remove the ring before it leaves it to the producer.
const cleanupWait = 5 * time.Second

// awaitCleanup runs after the drained stream was announced: the consumer
// lets its role go, so that the producer can take both roles and remove the
// lock file with the rest of the ring. If the producer died before doing so,
// nobody else will, so the consumer does (README, "When things die"): it
// takes both roles once the producer's is free.
func (c *Consumer) awaitCleanup() {
	_ = c.lock.Unlock(lockfile.Consumer)
	deadline := time.Now().Add(cleanupWait)
	step := 500 * time.Microsecond
	for {
		if stale, err := c.lock.Stale(); err != nil || stale {
			return // the producer removed the ring
		}
		// The producer lets its role go only after it removed the segment
		// and the semaphores (or by dying): once it is free, what is left
		// is ours to remove.
		if c.removeIfProducerGone() {
			return
		}
		if !time.Now().Before(deadline) {
			c.opt.Logf("the producer of %s did not remove the ring within %v after the stream was drained; leaving it to the producer (or shmpc gc)", c.names.Ring, cleanupWait)
			return
		}
		// The producer removes the ring as soon as it sees the drain: look
		// again soon, then less often.
		time.Sleep(step)
		step = min(2*step, 20*time.Millisecond)
	}
}

// waitItems sleeps until an item is published or the stream ends. While
// the producer is alive the wait has no bound; once it is gone, the
// published items are still delivered, and then a new producer has
// PeerTimeout to appear.
//
// It spins for Options.Spin first. While the producer was present at the
// last judgement (and no stall timeout is set), it sleeps armed, with ctx
// (Run's, which lives as long as the run): the monitor that Run started
// kicks the doorbell if the producer goes, so the sleep costs a futex wait
// and no watch, timer or goroutine of its own. Otherwise it judges the
// producer's presence and sleeps under a watch with the deadline that
// applies.
func (c *Consumer) waitItems(ctx context.Context, items ringobj.Bell) error {
	next := c.rd.Next()
	ready := func() bool {
		if c.ring.Head() != next {
			return true
		}
		_, ended := c.ring.End()
		return ended
	}
	if ringobj.Spin(c.opt.Spin, ready) {
		return nil
	}
	var goneSince time.Time
	stallSince := time.Now()
	for !ready() {
		if c.fastWait {
			f := c.watch.Arm(true)
			err := items.SleepArmed(func() bool {
				return ready() || c.watch.Fired() != f || ctx.Err() != nil
			})
			changed := c.watch.Fired() != f
			c.watch.Disarm()
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if changed {
				// Judge the change, but only if the items published
				// before it are all delivered: look at the ring first.
				c.fastWait = false
			}
			continue
		}
		// The claim generation before the lock (see producer's
		// waitConsumer): a producer attaching between the two looks must
		// not be taken for one that came and left.
		gen := c.ring.ProducerID().Gen
		if hook := internalhook.BetweenPeerLooks; hook != nil {
			hook()
		}
		present := c.watch.Present()
		now := time.Now()
		var limit time.Time
		switch {
		case !present && !c.watch.Seen() && gen == c.producerGen:
			// We attached to a ring whose producer was already gone: wait
			// for a new one as a consumer started first waits (-wait).
			if !now.Before(c.opened.Add(c.opt.Wait)) {
				return errProducerGone{what: fmt.Sprintf("is gone and no new producer came within %v", c.opt.Wait)}
			}
			// A producer can come and die between two looks at its lock,
			// leaving the presence as it was: look again every
			// firstPeerLook (its claim generation then tells).
			limit = now.Add(firstPeerLook)
			if end := c.opened.Add(c.opt.Wait); end.Before(limit) {
				limit = end
			}
		case !present:
			if goneSince.IsZero() {
				goneSince = now
			}
			limit = goneSince.Add(c.opt.PeerTimeout)
			if !now.Before(limit) {
				return errProducerGone{what: "is gone"}
			}
		default:
			goneSince = time.Time{}
			if c.opt.StallTimeout > 0 {
				limit = stallSince.Add(c.opt.StallTimeout)
				if !now.Before(limit) {
					return errProducerGone{what: fmt.Sprintf("published nothing for %v", c.opt.StallTimeout)}
				}
			} else {
				c.fastWait = true
				continue
			}
		}
		wctx, stop := c.watch.Watch(ctx, present)
		cancel := context.CancelFunc(func() {})
		if !limit.IsZero() {
			wctx, cancel = context.WithDeadline(wctx, limit)
		}
		_ = items.Sleep(wctx, ready)
		cancel()
		stop()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// firstPeerLook is how often a consumer waiting for a producer it never
// saw re-judges, so one that came and died unseen is noticed.
const firstPeerLook = 100 * time.Millisecond

// errProducerGone is waitItems' verdict; Run turns it into ErrPeerLost
// with the final counts once the items in flight are done.
type errProducerGone struct{ what string }

func (e errProducerGone) Error() string { return "producer " + e.what }

// peerLost is the *PeerLostError of a producer that is gone (what says
// how), next being the first item not delivered: how many items of the
// stream were delivered and, when its total is known, how many were lost.
func (c *Consumer) peerLost(what string, next uint64) error {
	e := &PeerLostError{What: what, Delivered: c.ring.Stats().Items}
	e.Report = fmt.Sprintf("%d items delivered", e.Delivered)
	if total := c.ring.StreamItems(); total > 0 {
		e.LostKnown = true
		if total > next {
			e.Lost = total - next
		}
		e.Report += fmt.Sprintf(", %d lost", e.Lost)
	} else {
		e.Report += ", the number lost is unknown (the stream's length was not given)"
	}
	return e
}

// removeIfProducerGone removes every object of the ring when no producer
// holds its role and the ring is ours to remove: the survivor's cleanup.
// It takes the gate and both roles first (lockfile's rule), so no producer
// can start meanwhile; if the lock file it holds is no longer the NAME's,
// the ring it knew was already removed and the names may belong to a new
// ring, so it removes nothing. It reports whether the ring is gone (removed
// here or found removed).
func (c *Consumer) removeIfProducerGone() bool {
	if c.lock == nil {
		return false
	}
	if stale, err := c.lock.Stale(); err == nil && stale {
		return true
	}
	undo, err := c.lock.LockAll()
	if err != nil {
		return false
	}
	defer undo()
	if stale, err := c.lock.Stale(); err != nil || stale {
		return err == nil
	}
	if int(c.ring.OwnerUID()) != os.Geteuid() && os.Geteuid() != 0 {
		c.opt.Logf("ring %s belongs to uid %d: leaving its objects for its owner (shmpc gc)", c.names.Ring, c.ring.OwnerUID())
		return true
	}
	if c.seg != nil {
		_ = c.seg.Remove()
	}
	_ = ringobj.UnlinkSems(c.names)
	_, _ = c.lock.RemoveLocked()
	return true
}

// Close gives up the consumer role and detaches. It does not remove the
// ring (its producer owns it) unless Run found the producer gone. A Run in
// progress in another goroutine is stopped as if its context ended (the
// items in flight are handled and released) and Close waits for it to
// return; so Close must not be called from the handler (return an error
// from it instead). Close is idempotent: later calls return once the first
// has finished.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		closeDone := c.closeDone
		c.mu.Unlock()
		<-closeDone // the first Close releases; later calls wait for it
		return nil
	}
	c.closed = true
	c.closeDone = make(chan struct{})
	defer close(c.closeDone)
	stop, done, pl := c.stopRun, c.runDone, c.pull
	c.mu.Unlock()
	if stop != nil {
		stop(ErrClosed)
		<-done
	}
	if pl != nil {
		pl.stop(ErrClosed) // ends a Next asleep on an empty ring
		pl.mu.Lock()       // and waits for it to return
		pl.maybeFinish()
		pl.close()
		pl.mu.Unlock()
	}
	return c.release()
}

func (c *Consumer) release() error {
	var errs []error
	if c.ring != nil && c.lock != nil && !c.drained {
		// Give the claim up: the header no longer names us.
		id := c.ring.ConsumerID()
		if id.PID == uint32(os.Getpid()) {
			c.ring.SetConsumerID(ring.Identity{Gen: id.Gen})
		}
	}
	if c.sems != nil {
		errs = append(errs, c.sems.Close())
	}
	if c.seg != nil {
		errs = append(errs, c.seg.Detach())
	}
	if c.lock != nil {
		errs = append(errs, ringobj.LeaveLockFile(c.lock, c.names, lockfile.Consumer, false, 0))
		errs = append(errs, c.lock.Close())
	}
	return errors.Join(errs...)
}
