package producer

import (
	"errors"
	"fmt"
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
	ErrPeerLost = ringobj.ErrPeerLost // the consumer died or left and none came back in time (a *PeerLostError)
	ErrBusy     = ringobj.ErrBusy     // another live producer owns the ring
	ErrForeign  = ringobj.ErrForeign  // the NAME's objects belong to someone or something else
	ErrGeometry = errors.New("ring geometry differs")
	ErrExists   = errors.New("ring exists")
	ErrClosed   = error(&ringobj.ClosedError{Side: "producer"}) // matches os.ErrClosed too
	ErrEnded    = ring.ErrEnded                                 // the stream ended: Reserve takes no more items (End finishes it)
)

// PeerLostError is the error of a producer whose consumer is gone: it
// matches ErrPeerLost, and errors.As finds it to read how many items were
// delivered and lost.
type PeerLostError = ringobj.PeerLostError

// NoWait as Options.Wait means: do not wait for a first consumer.
const NoWait time.Duration = -1

// Defaults of Options.
const (
	DefaultSlots    = 8
	DefaultSlotSize = 8 << 20
	DefaultWait     = 10 * time.Second
)

// Options configure a Producer. The zero value means: 8 slots of 8 MiB,
// huge pages and mlock where available, no madvise, no pre-touch, 0600,
// resume an existing ring, wait 10 s for a first consumer, peer timeout 0.
type Options struct {
	// Slots and SlotSize are the geometry; SlotSize must be a positive
	// multiple of 4096. When resuming, they must equal the ring's or be 0.
	Slots    int
	SlotSize int
	// Memory options of the segment (see shm.Options).
	HugePages shm.Policy
	Lock      shm.Policy
	Advise    bool
	Pretouch  bool
	// Perm are the permission bits of every object (0600 when zero).
	Perm os.FileMode
	// StreamItems and StreamBytes record the stream's intended totals in the
	// header (0 = unknown), so a producer that resumes knows where to stop.
	StreamItems uint64
	StreamBytes uint64
	// Fresh discards an existing ring of this NAME (whose owners are dead)
	// instead of resuming it.
	Fresh bool
	// CheckStream makes a resuming producer require StreamItems and
	// StreamBytes to equal the ring's (ErrGeometry otherwise); without it
	// a resumed ring keeps its own totals.
	CheckStream bool
	// NoResume refuses to resume an existing ring (an error matching
	// ErrExists) instead: for a stream that cannot know what its
	// predecessor committed, such as one read from a pipe.
	NoResume bool
	// Wait bounds how long a producer waits for its first consumer when it
	// needs one (ring full, or stream ended and not drained). 0 means
	// DefaultWait; NoWait (any negative value) means not at all.
	Wait time.Duration
	// PeerTimeout is how long the producer waits for a new consumer after
	// its consumer died or left. 0: give up at once.
	PeerTimeout time.Duration
	// StallTimeout treats a live consumer that released nothing for this
	// long, while the producer waited on it, as lost (0: never). A stopped
	// (SIGSTOP) or stuck consumer is otherwise alive and waited for.
	StallTimeout time.Duration
	// Spin is how long a producer that finds the ring full keeps looking
	// at it, busy, before it sleeps on its semaphore. 0 (the default)
	// sleeps at once: the blocking wait. A spin saves the wake-up when
	// slots come free faster than a sleep and wake-up take, at the price
	// of a busy CPU while it spins.
	Spin time.Duration
	// Logf receives notes worth telling a user (fallbacks taken under Auto,
	// a resumed stream). Nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() error {
	if o.Slots == 0 {
		o.Slots = DefaultSlots
	}
	if o.SlotSize == 0 {
		o.SlotSize = DefaultSlotSize
	}
	if o.Slots < 1 || o.Slots > ring.MaxSlots {
		return fmt.Errorf("slots %d: want 1 to %d", o.Slots, ring.MaxSlots)
	}
	if o.SlotSize <= 0 || o.SlotSize%4096 != 0 {
		return fmt.Errorf("slot size %d: want a positive multiple of 4096", o.SlotSize)
	}
	if o.Perm == 0 {
		o.Perm = 0o600
	}
	if o.Perm&^0o777 != 0 {
		return fmt.Errorf("permission %#o: want bits within 0777", o.Perm)
	}
	switch {
	case o.Wait == 0:
		o.Wait = DefaultWait
	case o.Wait < 0:
		o.Wait = 0 // NoWait
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Producer holds the producer role of one ring and writes items into its
// slots. Open returns one; Close lets it go and removes whatever of the ring
// End did not. It is used by one goroutine, but for Close (see the package
// documentation, Concurrency).
type Producer struct {
	opt   Options
	names ringobj.Names
	lock  *lockfile.File
	sems  *ringobj.Sems
	seg   *shm.Segment
	ring  *ring.Ring
	w     *ring.Writer
	watch *peer.Watcher

	toConsumer ringobj.Bell // rings the consumer: items published, stream ended
	space      ringobj.Bell // the consumer rings us: slots released

	slot        ring.Slot
	reserved    bool
	resumed     bool
	started     time.Time // when the producer came up, for the first-consumer wait
	consumerGen uint64    // the consumer claim generation at Open: a change means a consumer came
	tailAtOpen  uint64    // the ring's tail at Open: a release since means a consumer came

	counters   ringobj.Snapshot[ring.Counters] // Stats' view of the header, safe against the detach
	givenSlots int                             // geometry as given (0: left out), checked against a resumed ring
	givenSize  int
	firstRes   bool
	removed    bool   // End or Close removed the ring
	lastHead   uint64 // the head when the ring was removed, for Next
	flags      uint32 // the ring's flags, for Huge after the ring is gone

	fastWait bool // the consumer was present at the last judgement: sleep armed, without a watch
	monitor  bool // the peer monitor runs (Close stops it)

	// use counts the calls in progress, plus closedBit once Close began;
	// the call that brings it back to closedBit closes idle. Close waits
	// for that before it removes what the calls use.
	use       atomic.Int64
	idle      chan struct{}
	idleOnce  sync.Once
	closeDone chan struct{} // closed when the first Close has finished
	// kickDone is the Done channel of the context whose end kicks the
	// producer's doorbell (registered by sleepArmed); kickStop undoes it.
	kickDone <-chan struct{}
	kickStop func() bool
}

const closedBit = 1 << 62

// enter counts a call in, or fails with ErrClosed once Close began or the
// ring was removed.
func (p *Producer) enter(op string) error {
	if p.use.Add(1)&closedBit != 0 || p.removed {
		p.leave()
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	return nil
}

// leave counts a call out.
func (p *Producer) leave() {
	if p.use.Add(-1) == closedBit {
		p.idleOnce.Do(func() { close(p.idle) })
	}
}

// closing reports whether Close began: waits end at once.
func (p *Producer) closing() bool { return p.use.Load()&closedBit != 0 }

// Name returns the ring's NAME.
func (p *Producer) Name() string { return p.names.Ring }

// Ring returns the ring the producer writes (for stats and inspection),
// valid until End or Close removes it.
func (p *Producer) Ring() *ring.Ring { return p.ring }

// Stats returns the ring's live counters, both sides', since it was
// created: items and bytes committed and released, each side's sleeps and
// wake-ups, peer losses, integrity errors. It may be called at any time
// from any goroutine; once End or Close removed the ring it returns the
// counters as they were then. They live in shared memory: only as right as
// the processes that can write the segment.
func (p *Producer) Stats() ring.Counters {
	return p.counters.Read()
}

// Resumed reports whether Open resumed an existing ring.
func (p *Producer) Resumed() bool { return p.resumed }

// Next returns the sequence number the next committed item gets (after End
// or Close: the number of items committed).
func (p *Producer) Next() uint64 {
	if p.removed {
		return p.lastHead
	}
	return p.ring.Head()
}

// Ended reports whether the ring's stream has ended: Reserve takes no more
// items and End finishes the stream. It is so after End, and at Open for a
// resumed ring whose producer died in End, before the drain.
func (p *Producer) Ended() bool {
	if p.removed {
		return true
	}
	_, ended := p.ring.End()
	return ended
}

// Huge reports whether the segment is backed by huge pages.
func (p *Producer) Huge() bool { return p.flags&ring.FlagHuge != 0 }

// Pages returns "huge" or "normal".
func (p *Producer) Pages() string {
	if p.Huge() {
		return "huge"
	}
	return "normal"
}
