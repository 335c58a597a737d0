package producer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/peer"
	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

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
	if hook := internalhook.ProducerAttached; hook != nil {
		hook(p.names.Ring)
	}
	// A consumer may attach as soon as the ring is formatted, before this
	// line: the generation a ring this Open created started at is 0 (Format
	// zeroes it), so such a consumer counts as one that came. A resumed
	// ring's generation is read now; a consumer that attached before that
	// and released items is known by the tail (waitConsumer).
	if p.resumed {
		p.consumerGen = p.ring.ConsumerID().Gen
	}
	p.tailAtOpen = p.ring.Tail()
	p.counters.Set(p.ring.Counters)
	p.w = p.ring.Writer()
	p.flags = p.ring.Flags()
	p.toConsumer = ringobj.Bell{Waiting: p.ring.ConsumerWaiting(), Sem: p.sems.Filled, Wakes: p.ring.ProducerWakes()}
	p.space = ringobj.Bell{Waiting: p.ring.ProducerWaiting(), Sem: p.sems.Empty, Sleeps: p.ring.ProducerSleeps()}
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
