package consumer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"time"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/peer"
	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

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
	c.counters.Set(c.ring.Counters)
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
