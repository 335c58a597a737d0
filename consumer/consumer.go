package consumer

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/peer"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
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
	// ErrRan: Run was called a second time, or Run after Next, or Next
	// after Run (a Consumer is read one way, once).
	ErrRan = errors.New("consumer already ran: Run may be called once, and not mixed with Next")
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
	// Workers is the most goroutines that run the handler at once (Run's
	// own and Workers-1 helpers, which get items only when more are
	// waiting), or, with Ordered and for Next, that verify items at once
	// (default: runtime.NumCPU()).
	Workers int
	// Ordered calls the handler for one item at a time, in sequence order
	// (for output that must keep the stream's order, such as a pipe),
	// while up to Workers-1 helpers verify the items behind it. Next and
	// Reader always deliver in order.
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
	// BeforeDrain, when set, is called once the stream ended and every item
	// of it was released, before the consumer tells the producer the stream
	// is drained (after which the producer removes the ring). A consumer
	// that forwards the stream elsewhere records the stream's end there, so
	// that no crash between the two can lose it: a consumer that dies
	// before the drain leaves the ended ring to its successor, which calls
	// BeforeDrain again. An error leaves the drain untold, and the ring
	// waits for the next consumer; Run and Next return it, wrapped (when the
	// drain is reached in a Release or Close, it goes to Logf, and a later
	// Next returns it).
	BeforeDrain func() error
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
	// Ring is the ring's live counters, both sides', since it was created
	// (read from its header as it is now, or as it was when Close
	// detached). Like everything in shared memory they are only as right
	// as the processes that can write the segment.
	Ring ring.Counters
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

	items0      uint64        // the ring's released-items counter at attach
	opened      time.Time     // when Open began, for the first-producer wait
	producerGen uint64        // the producer claim generation at attach: a change means a producer came
	fastWait    bool          // the producer was present at the last judgement: sleep armed, without a watch
	judgedID    ring.Identity // the producer's claim in the header at that judgement
	drained     bool

	counters ringobj.Snapshot[ring.Counters] // Stats' view of the header, safe against Close's detach

	mu        sync.Mutex              // guards the fields below, for a Close from another goroutine
	ran       bool                    // Run or Next was called
	pull      *puller                 // the engine of Next and of an ordered Run
	closed    bool                    // Close was called
	stopRun   context.CancelCauseFunc // ends a Run in progress (cause ErrClosed)
	runDone   chan struct{}           // closed when that Run returned
	closeDone chan struct{}           // closed when the first Close has finished
}

// bells returns the consumer's two doorbells, counting its sleeps and its
// wake-ups of the producer in the ring's header.
func (c *Consumer) bells() (space, items ringobj.Bell) {
	space = ringobj.Bell{Waiting: c.ring.ProducerWaiting(), Sem: c.sems.Empty, Wakes: c.ring.ConsumerWakes()}
	items = ringobj.Bell{Waiting: c.ring.ConsumerWaiting(), Sem: c.sems.Filled, Sleeps: c.ring.ConsumerSleeps()}
	return space, items
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
	s.Ring = c.counters.Read()
	first, last := c.firstReserve.Load(), c.lastRelease.Load()
	if first > 0 && last > first {
		s.Seconds = float64(last-first) / 1e9
	}
	return s
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
		errs = append(errs, c.counters.Detach(c.seg.Detach))
	}
	if c.lock != nil {
		errs = append(errs, ringobj.LeaveLockFile(c.lock, c.names, lockfile.Consumer, false, 0))
		errs = append(errs, c.lock.Close())
	}
	return errors.Join(errs...)
}
