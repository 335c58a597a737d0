// Package producer is the writing side of a shmpc ring: it creates (or
// resumes) the ring NAME's objects, writes items into its slots and ends
// the stream, then waits for the consumer to drain it and removes every
// object.
//
// The fast path is zero copy: Reserve a slot, write into Slot.Buf, Commit
// the length. Send copies a []byte in and checksums the source while
// copying (contract 6). Commit checksums the slot as it is when called: a
// process that can write the segment could change the slot in between;
// CommitCRC takes a checksum the caller computed from its own data.
//
// # Delivery guarantee
//
// Without crashes every committed item is delivered exactly once, in
// order. Across a consumer crash delivery is at least once: the items the
// dead consumer had acquired but not released (at most Slots of them) are
// delivered again to the next consumer; sequence numbers let a handler
// drop repeats.
//
// A Producer is not safe for concurrent use: one goroutine reserves and
// commits. The exception is Close, which may be called from another
// goroutine to abort a Reserve or End that waits: the waiting call returns
// ErrClosed, and Close removes the ring once it has. Close unmaps the
// slots, so it must not race with the owner writing into a reserved Slot:
// to stop a producer that may be writing, cancel the context its Reserve
// takes and let the owner call End or Close.
//
// # Fast path
//
// Reserve and Commit make no system call and no allocation while neither
// side sleeps: Commit rings the consumer's doorbell only when the consumer
// flagged itself asleep. A producer that finds the ring full spins for
// Options.Spin, then sleeps on its semaphore armed rather than watched: a
// monitor goroutine (started at the first such sleep, ended by Close)
// looks at the consumer's role lock and pidfd and rings the producer's
// own doorbell if the consumer goes (and once a second, in case a wake-up
// was lost to a scribbled doorbell word), so a sleep costs a futex wait and
// no watch, timer or goroutine of its own. Waits whose
// outcome depends on a deadline (no consumer yet, a consumer that left, a
// stall timeout) take the slower, watched path.
package producer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/peer"
	"github.com/shmpc/shmpc/internal/proc"
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

// Producer writes items into a ring it owns.
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
	givenSlots  int       // geometry as given (0: left out), checked against a resumed ring
	givenSize   int
	firstRes    bool
	removed     bool   // End or Close removed the ring
	lastHead    uint64 // the head when the ring was removed, for Next
	flags       uint32 // the ring's flags, for Huge after the ring is gone

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

// Open creates the ring name, or resumes it when it exists with owners
// that are all gone (unless opt.Fresh), and takes the producer role. It
// posts `ready` for a consumer that is waiting. A resumed ring whose stream
// already ended (its producer died in End, before the drain) takes no more
// items: End finishes it (waits for the drain and removes the ring).
func Open(ctx context.Context, name string, opt Options) (_ *Producer, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open producer for %s: %w", name, err)
	}
	givenSlots, givenSize := opt.Slots, opt.SlotSize
	if err := opt.defaults(); err != nil {
		return nil, fmt.Errorf("open producer: %w", err)
	}
	names, err := ringobj.For(name)
	if err != nil {
		return nil, fmt.Errorf("open producer: %w", err)
	}
	p := &Producer{opt: opt, names: names, started: time.Now(), givenSlots: givenSlots, givenSize: givenSize, idle: make(chan struct{}), closeDone: make(chan struct{})}
	defer func() {
		if err != nil {
			p.abandon()
		}
	}()
	uid := os.Geteuid()
	p.lock, err = ringobj.ClaimRole(names, lockfile.Producer, true, opt.Perm, uid)
	if err != nil {
		if errors.Is(err, lockfile.ErrHeld) {
			return nil, fmt.Errorf("ring %s already has a live producer%s: %w", name, holder(names, true), ErrBusy)
		}
		return nil, fmt.Errorf("open producer for %s: %w", name, err)
	}
	// The file may have been made by gc or an earlier producer with
	// narrower bits: the owner of the ring sets its own.
	if err := p.lock.Chmod(opt.Perm); err != nil {
		return nil, fmt.Errorf("open producer for %s: %w", name, err)
	}
	p.watch = peer.New(p.lock, lockfile.Consumer, func() proc.ID {
		if p.ring == nil {
			return proc.ID{}
		}
		id := p.ring.ConsumerID()
		return proc.ID{PID: int(id.PID), Start: id.Start}
	})

	if err := p.attachOrCreate(uid); err != nil {
		return nil, err
	}
	self := proc.Self()
	prev := p.ring.ProducerID()
	p.ring.SetProducerID(ring.Identity{PID: uint32(self.PID), Start: self.Start, Gen: prev.Gen + 1})
	p.consumerGen = p.ring.ConsumerID().Gen
	p.w = p.ring.Writer()
	p.flags = p.ring.Flags()
	p.toConsumer = ringobj.Bell{Waiting: p.ring.ConsumerWaiting(), Sem: p.sems.Filled}
	p.space = ringobj.Bell{Waiting: p.ring.ProducerWaiting(), Sem: p.sems.Empty}
	if err := p.sems.Ready.Post(); err != nil {
		return nil, fmt.Errorf("post ready: %w", err)
	}
	if p.resumed {
		p.opt.Logf("resuming ring %s at item %d (%d released)", p.names.Ring, p.ring.Head(), p.ring.Tail())
		if at, ended := p.ring.End(); ended {
			// The last producer died after it ended the stream, before the
			// drain: there is nothing left to send, only the end to finish
			// (End waits for the drain and removes the ring).
			p.opt.Logf("the stream of %s ended at item %d: nothing left to send; End finishes it", p.names.Ring, at)
		}
	}
	return p, nil
}

// holder describes who holds a role, from the ring's header when it can be
// read, for error messages.
func holder(names ringobj.Names, producer bool) string {
	// Only a segment that is one uid's (owner and creator) is read: a
	// handed-over one is someone's attack, and not worth a message.
	info, err := shm.Lookup(names.Key)
	if err != nil || info.UID != info.CUID {
		return ""
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return ""
	}
	defer seg.Detach()
	r, err := ring.Open(seg.Bytes())
	if err != nil || r.Name() != names.Ring {
		return ""
	}
	id := r.ConsumerID()
	if producer {
		id = r.ProducerID()
	}
	if id.PID == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", id.PID)
}

// attachOrCreate resumes the existing ring or creates a new one. The
// producer role is held, so no other producer races it; a consumer may be
// attached to an existing ring.
func (p *Producer) attachOrCreate(uid int) error {
	info, err := shm.Lookup(p.names.Key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p.create(uid)
	case err != nil:
		return fmt.Errorf("look up segment of %s: %w", p.names.Ring, err)
	}
	if err := ringobj.CheckSegment(p.names, info, uid, p.opt.Perm); err != nil {
		return err
	}
	// Attach without the memory options: the header is validated before
	// the segment's pages are locked or faulted in.
	seg, err := shm.AttachID(info.ID, false, shm.Options{Lock: shm.Off})
	if err != nil {
		return fmt.Errorf("attach segment of %s: %w", p.names.Ring, err)
	}
	r, err := ring.Open(seg.Bytes())
	if err != nil {
		seg.Detach()
		return fmt.Errorf("segment key %#x is not a usable shmpc ring (%v); if it is a leftover, run `shmpc gc`: %w",
			p.names.Key, err, ErrForeign)
	}
	if r.Name() != p.names.Ring {
		seg.Detach()
		return fmt.Errorf("segment key %#x holds ring %q, not %q (key collision): %w",
			p.names.Key, r.Name(), p.names.Ring, ErrForeign)
	}
	if int(r.OwnerUID()) != uid {
		seg.Detach()
		return fmt.Errorf("ring %s is owned by uid %d: %w", p.names.Ring, r.OwnerUID(), ErrForeign)
	}
	if p.opt.Fresh {
		if p.watch.Present() {
			seg.Detach()
			return fmt.Errorf("ring %s has a live consumer%s; stop it before discarding the ring (Options.Fresh, shmpc produce -fresh): %w",
				p.names.Ring, holder(p.names, false), ErrBusy)
		}
		seg.Detach()
		if err := shm.RemoveID(info.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove old segment of %s: %w", p.names.Ring, err)
		}
		if err := ringobj.UnlinkSems(p.names); err != nil {
			return err
		}
		p.opt.Logf("discarded the existing ring %s (-fresh)", p.names.Ring)
		return p.create(uid)
	}
	if p.opt.NoResume {
		seg.Detach()
		return fmt.Errorf("ring %s exists (%d items committed) and this stream cannot resume it; discard it with Options.Fresh (shmpc produce -fresh): %w",
			p.names.Ring, r.Head(), ErrExists)
	}
	if (p.givenSlots != 0 && p.givenSlots != r.Slots()) || (p.givenSize != 0 && p.givenSize != r.SlotSize()) {
		seg.Detach()
		return fmt.Errorf("ring %s has %d slots of %d bytes, not %d of %d; leave the geometry out to resume it, or discard it (Options.Fresh, -fresh): %w",
			p.names.Ring, r.Slots(), r.SlotSize(), p.opt.Slots, p.opt.SlotSize, ErrGeometry)
	}
	if p.opt.CheckStream && (r.StreamItems() != p.opt.StreamItems || r.StreamBytes() != p.opt.StreamBytes) {
		seg.Detach()
		return fmt.Errorf("ring %s was started for %d items (%d bytes), not %d (%d bytes): leave the totals (-count/-bytes) out to resume it, or discard it (Options.Fresh, -fresh): %w",
			p.names.Ring, r.StreamItems(), r.StreamBytes(), p.opt.StreamItems, p.opt.StreamBytes, ErrGeometry)
	}
	p.opt.Slots, p.opt.SlotSize = r.Slots(), r.SlotSize()
	if err := seg.Setup(shm.Options{Lock: p.opt.Lock, Advise: p.opt.Advise, Pretouch: p.opt.Pretouch}); err != nil {
		seg.Detach()
		return fmt.Errorf("attach segment of %s: %w", p.names.Ring, err)
	}
	sems, err := ringobj.OpenSems(p.names, true, p.opt.Perm, uid)
	if err != nil {
		seg.Detach()
		return err
	}
	p.seg, p.ring, p.sems, p.resumed = seg, r, sems, true
	return nil
}

func (p *Producer) create(uid int) error {
	size, err := ring.Size(p.opt.Slots, p.opt.SlotSize)
	if err != nil {
		return fmt.Errorf("size ring %s: %w", p.names.Ring, err)
	}
	// Semaphores first, segment last: a consumer that finds a formatted
	// segment finds the semaphores too.
	sems, err := ringobj.OpenSems(p.names, true, p.opt.Perm, uid)
	if err != nil {
		return err
	}
	p.sems = sems
	seg, err := shm.Create(p.names.Key, size, shm.Options{
		HugePages: p.opt.HugePages, Lock: p.opt.Lock, Advise: p.opt.Advise,
		Pretouch: p.opt.Pretouch, Perm: p.opt.Perm,
	})
	if err != nil {
		return fmt.Errorf("create segment of %s: %w", p.names.Ring, err)
	}
	p.seg = seg
	for _, n := range seg.Notes() {
		p.opt.Logf("%s", n)
	}
	var flags uint32
	if seg.Huge() {
		flags |= ring.FlagHuge
	}
	if seg.Locked() {
		flags |= ring.FlagLocked
	}
	if p.opt.Advise {
		flags |= ring.FlagMadvise
	}
	if p.opt.Pretouch {
		flags |= ring.FlagPretouch
	}
	r, err := ring.Format(seg.Bytes(), ring.Config{
		Name: p.names.Ring, Slots: p.opt.Slots, SlotSize: p.opt.SlotSize, Flags: flags,
		OwnerUID: uint32(uid), StreamItems: p.opt.StreamItems, StreamBytes: p.opt.StreamBytes,
	})
	if err != nil {
		return fmt.Errorf("format ring %s: %w", p.names.Ring, err)
	}
	p.ring = r
	return nil
}

// Name returns the ring's NAME.
func (p *Producer) Name() string { return p.names.Ring }

// Ring returns the ring the producer writes (for stats and inspection),
// valid until End or Close removes it.
func (p *Producer) Ring() *ring.Ring { return p.ring }

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

// Slot is a reserved slot: write the item into Buf, then Commit.
type Slot = ring.Slot

// Reserve returns the next free slot, waiting while the ring is full. It
// returns ErrPeerLost when the consumer is gone and no successor came within
// the peer timeout (or no first consumer within Wait), and ctx's error when
// ctx ends. Reserving again without a Commit returns the same slot. Pass
// the same ctx to every call of a stream: a sleep on a full ring registers
// a wake-up with ctx once, and a new ctx costs a new registration (an
// allocation) at its first sleep.
func (p *Producer) Reserve(ctx context.Context) (Slot, error) {
	if err := p.enter("reserve"); err != nil {
		return Slot{}, err
	}
	defer p.leave()
	return p.reserve(ctx)
}

// reserve is Reserve for a caller that counted itself in (enter).
func (p *Producer) reserve(ctx context.Context) (Slot, error) {
	// The context first, even with a slot free: a cancelled stream sends
	// nothing more.
	if err := ctx.Err(); err != nil {
		return Slot{}, fmt.Errorf("reserve: %w", err)
	}
	if p.reserved {
		return p.slot, nil
	}
	for {
		if p.closing() {
			return Slot{}, fmt.Errorf("reserve: %w", ErrClosed)
		}
		s, err := p.w.Reserve()
		if err == nil {
			p.slot, p.reserved = s, true
			if !p.firstRes {
				p.firstRes = true
				p.ring.AppWord(ringobj.AppFirstReserve).CompareAndSwap(0, uint64(time.Now().UnixNano()))
			}
			return s, nil
		}
		if !errors.Is(err, ring.ErrFull) {
			return Slot{}, fmt.Errorf("reserve: %w", err)
		}
		slots := uint64(p.ring.Slots())
		free := func() bool { return p.ring.Head()-p.ring.Tail() < slots || p.closing() }
		if ringobj.Spin(p.opt.Spin, free) {
			continue
		}
		if p.fastWait {
			if err := p.sleepArmed(ctx, free); err != nil {
				if p.closing() {
					err = ErrClosed
				}
				return Slot{}, fmt.Errorf("reserve: %w", err)
			}
			continue
		}
		sleep := func(ctx context.Context) error { return p.space.Sleep(ctx, free) }
		if err := p.waitConsumer(ctx, sleep, free, true); err != nil {
			return Slot{}, fmt.Errorf("reserve: %w", err)
		}
	}
}

// sleepArmed sleeps on the producer's doorbell until free() holds, the
// consumer's presence changes (the monitor saw it: fastWait ends, so the
// next wait judges it) or ctx ends. It costs no watch, timer or goroutine
// per sleep once the monitor runs.
func (p *Producer) sleepArmed(ctx context.Context, free func() bool) error {
	if !p.monitor {
		p.monitor = true
		p.watch.Start(func() { _ = p.space.Kick() }, ringobj.Recheck)
	}
	if done := ctx.Done(); done != nil && done != p.kickDone {
		// ctx's end kicks our doorbell: registered once per context (the
		// same Done channel is the same cancellation), not once per sleep.
		if p.kickStop != nil {
			p.kickStop()
		}
		p.kickDone = done
		p.kickStop = context.AfterFunc(ctx, func() { _ = p.space.Kick() })
	}
	f := p.watch.Arm(true)
	err := p.space.SleepArmed(func() bool {
		return free() || p.watch.Fired() != f || ctx.Err() != nil
	})
	if p.watch.Fired() != f {
		p.fastWait = false
	}
	p.watch.Disarm()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// Commit publishes the reserved slot's first n bytes, with the CRC32C of
// the slot as it is now.
func (p *Producer) Commit(n int) error {
	if err := p.enter("commit"); err != nil {
		return err
	}
	defer p.leave()
	if !p.reserved {
		return fmt.Errorf("commit: %w", ring.ErrNotReserved)
	}
	if err := p.w.Commit(n); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	p.reserved = false
	return p.toConsumer.Ring()
}

// CommitCRC publishes the reserved slot's first n bytes with a CRC32C the
// caller computed from its own copy of the data (contract 6).
func (p *Producer) CommitCRC(n int, crc uint32) error {
	if err := p.enter("commit"); err != nil {
		return err
	}
	defer p.leave()
	return p.commitCRC(n, crc)
}

// commitCRC is CommitCRC for a caller that counted itself in (enter).
func (p *Producer) commitCRC(n int, crc uint32) error {
	if !p.reserved {
		return fmt.Errorf("commit: %w", ring.ErrNotReserved)
	}
	if err := p.w.CommitCRC(n, crc); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	p.reserved = false
	return p.toConsumer.Ring()
}

// Send copies data (at most the slot size) into the next slot and commits
// it, checksumming data (not the slot) while copying.
func (p *Producer) Send(ctx context.Context, data []byte) error {
	if err := p.enter("send"); err != nil {
		return err
	}
	defer p.leave()
	if len(data) > p.ring.SlotSize() {
		return fmt.Errorf("send %d bytes: slot size is %d: %w", len(data), p.ring.SlotSize(), ring.ErrTooLarge)
	}
	s, err := p.reserve(ctx)
	if err != nil {
		return err
	}
	crc := ring.CopyCRC(s.Buf, data)
	return p.commitCRC(len(data), crc)
}

// End ends the stream at the current head, waits until the consumer has
// drained it (every item released), and then removes the ring: a
// consumer in the same process need not wait for Close. It returns
// ErrPeerLost when the consumer is gone and none came back within the peer
// timeout; the ring then stays until Close.
func (p *Producer) End(ctx context.Context) error {
	if err := p.enter("end"); err != nil {
		return err
	}
	defer p.leave()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	p.reserved = false // a reserved, uncommitted slot is dropped
	if err := p.w.End(); err != nil {
		return fmt.Errorf("end stream: %w", err)
	}
	if err := p.toConsumer.Ring(); err != nil {
		return err
	}
	if hook := internalhook.ProducerEnded; hook != nil {
		hook(p.names.Ring)
	}
	drained := func() bool { return p.ring.Drained() || p.closing() }
	// The consumer posts `shutdown` once after it set drained; the word in
	// the header is the truth, the post only wakes us.
	sleep := func(ctx context.Context) error {
		for !drained() {
			if err := p.sems.Shutdown.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	if err := p.waitConsumer(ctx, sleep, drained, false); err != nil {
		return fmt.Errorf("wait for the consumer to drain %s: %w", p.names.Ring, err)
	}
	if p.closing() {
		return fmt.Errorf("end: %w", ErrClosed)
	}
	if hook := internalhook.ProducerDrained; hook != nil {
		hook(p.names.Ring)
	}
	return p.remove()
}

// waitConsumer calls sleep until ready() holds, judging the consumer's
// presence in between: while it is alive the wait has no bound; before
// any consumer came, the bound is Wait from Open; after it left,
// PeerTimeout. sleep must return when ready() holds or its context ends.
// With armable, a judgement that the consumer is present and no deadline
// applies returns at once with fastWait set, so that the caller sleeps
// armed (sleepArmed) instead of under a watch.
func (p *Producer) waitConsumer(ctx context.Context, sleep func(context.Context) error, ready func() bool, armable bool) error {
	var goneSince time.Time
	progress, progressAt := p.ring.Tail(), time.Now()
	for !ready() {
		// The claim generation first, the lock second: a consumer takes
		// its lock before it bumps the generation, so a generation that
		// changed after the first look is one whose lock the second look
		// sees. The other order takes a consumer attaching between the two
		// looks for one that came and left.
		gen := p.ring.ConsumerID().Gen
		if hook := internalhook.BetweenPeerLooks; hook != nil {
			hook()
		}
		present := p.watch.Present()
		now := time.Now()
		if t := p.ring.Tail(); t != progress {
			progress, progressAt = t, now
		}
		var limit time.Time
		switch {
		case present:
			goneSince = time.Time{}
			if p.opt.StallTimeout > 0 {
				limit = progressAt.Add(p.opt.StallTimeout)
				if !now.Before(limit) {
					return p.peerLost(fmt.Sprintf("consumer of %s made no progress for %v", p.names.Ring, p.opt.StallTimeout))
				}
			} else {
				p.fastWait = true // Reserve's next wait sleeps armed
				if armable {
					return nil
				}
			}
		case !p.watch.Seen() && gen == p.consumerGen:
			if !now.Before(p.started.Add(p.opt.Wait)) && !ready() {
				return p.peerLost(fmt.Sprintf("no consumer attached to %s within %v", p.names.Ring, p.opt.Wait))
			}
			// A first consumer can attach and die between two looks at
			// its lock, leaving the presence as it was: look again every
			// firstConsumerLook (its claim generation then tells).
			limit = now.Add(firstConsumerLook)
			if end := p.started.Add(p.opt.Wait); end.Before(limit) {
				limit = end
			}
		default:
			if goneSince.IsZero() {
				goneSince = now
			}
			limit = goneSince.Add(p.opt.PeerTimeout)
			// A consumer that drained the stream lets its role go at
			// once: look at the ring again after the lock said "gone".
			if !now.Before(limit) && !ready() {
				return p.peerLost(fmt.Sprintf("consumer of %s is gone", p.names.Ring))
			}
		}
		wctx, stop := p.watch.Watch(ctx, present)
		cancel := context.CancelFunc(func() {})
		if !limit.IsZero() {
			wctx, cancel = context.WithDeadline(wctx, limit)
		}
		_ = sleep(wctx) // woken by a ring, a change of presence or the deadline: look again
		cancel()
		stop()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// firstConsumerLook is how often a producer waiting for its first
// consumer re-judges, so one that came and died unseen is noticed.
const firstConsumerLook = 100 * time.Millisecond

// peerLost is the *PeerLostError of a consumer that is gone (what says
// how): how many items were delivered (released by a consumer) and how
// many are lost if the ring goes now: committed but not released, and,
// when the stream's total is known, never sent.
func (p *Producer) peerLost(what string) error {
	head, tail := p.ring.Head(), p.ring.Tail()
	lost := head - tail
	e := &PeerLostError{What: what, Delivered: tail, Lost: lost}
	e.Report = fmt.Sprintf("%d items delivered, %d lost", tail, lost)
	if total := p.ring.StreamItems(); total > 0 {
		e.LostKnown = true
		if total > head {
			e.Report += fmt.Sprintf(" (%d committed but not released) and %d not sent", lost, total-head)
			e.Lost += total - head
		}
	}
	return e
}

// Close ends the producer. Unless End removed the ring already, it
// removes every object of the ring (segment, semaphores, lock file) by the
// ids it holds; a consumer still attached keeps its mapping and treats the
// producer as gone. A Reserve or End waiting in another goroutine returns
// ErrClosed first. Close is idempotent: later calls return once the first
// has finished.
func (p *Producer) Close() error {
	var busy int64
	for {
		old := p.use.Load()
		if old&closedBit != 0 {
			<-p.closeDone // the first Close removes; later calls wait for it
			return nil
		}
		if p.use.CompareAndSwap(old, old|closedBit) {
			busy = old
			break
		}
	}
	defer close(p.closeDone)
	if busy != 0 {
		// Wake a sleeper on either semaphore; it sees closing() and leaves.
		_ = p.space.Kick()
		_ = p.sems.Shutdown.Post()
		<-p.idle
	}
	if p.removed {
		return nil
	}
	return p.remove()
}

// remove deletes every object of the ring, segment first and lock file
// last (the lock file is what gc judges ownership by), then lets go. The
// segment goes by the id the producer holds; the semaphores by name only
// while the lock file it holds is still the NAME's (else the names may be
// a successor's). The lock file goes only by lockfile's rule (the gate and
// both roles on it): the producer lets its own role go first and then
// tries (once, or for up to removeLockWait after a drain), so of two sides
// leaving at once at least one finds both roles free; a consumer that
// stays removes the file when it leaves.
func (p *Producer) remove() error {
	p.stopWaking()
	drained := false
	if p.ring != nil {
		p.lastHead = p.ring.Head()
		drained = p.ring.Drained()
	}
	var errs []error
	if p.seg != nil {
		if err := p.seg.Remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		errs = append(errs, p.seg.Detach())
	}
	stale := true
	if p.lock != nil {
		var err error
		if stale, err = p.lock.Stale(); err != nil {
			errs = append(errs, err)
		}
	}
	if !stale {
		errs = append(errs, ringobj.UnlinkSems(p.names))
	}
	if p.sems != nil {
		errs = append(errs, p.sems.Close())
	}
	if p.lock != nil {
		// After a drain the consumer is leaving too and lets its role go
		// at once: wait for that (briefly) so that End returns with
		// nothing of the ring left.
		wait := time.Duration(0)
		if drained {
			wait = removeLockWait
		}
		errs = append(errs, ringobj.LeaveLockFile(p.lock, p.names, lockfile.Producer, false, wait))
		errs = append(errs, p.lock.Close())
	}
	p.removed = true
	return errors.Join(errs...)
}

// removeLockWait bounds how long a producer that removed a drained ring
// waits for the leaving consumer's role to come free.
const removeLockWait = time.Second

// stopWaking ends the peer monitor, before the semaphores and the lock
// file it uses are closed.
func (p *Producer) stopWaking() {
	if p.kickStop != nil {
		p.kickStop()
		p.kickStop, p.kickDone = nil, nil
	}
	if p.monitor && p.watch != nil {
		p.watch.Stop()
		p.monitor = false
	}
}

// abandon undoes a failed Open: it removes what Open created and nothing
// that existed before. The lock file goes only by lockfile's rule (both
// roles on it, still at the path): when Open created it, or when no
// segment of the NAME is left; a claimant that lost the role holds no lock
// and never gets here with one.
func (p *Producer) abandon() {
	if p.seg != nil && !p.resumed {
		_ = p.seg.Remove()
	}
	if p.seg != nil {
		_ = p.seg.Detach()
	}
	if p.sems != nil {
		_ = p.sems.Close()
		if !p.resumed {
			_ = ringobj.UnlinkSems(p.names)
		}
	}
	if p.lock != nil {
		if !p.resumed {
			_ = ringobj.LeaveLockFile(p.lock, p.names, lockfile.Producer, p.lock.Created(), 0)
		}
		_ = p.lock.Close()
	}
}
