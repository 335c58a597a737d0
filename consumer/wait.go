package consumer

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/ringobj"
)

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
			// A change of the producer's claim in the header since the
			// judgement (a producer that removes the ring gives its claim
			// up, then rings) wakes the sleep too, like a change the
			// monitor sees.
			id := c.judgedID
			f := c.watch.Arm(true)
			err := items.SleepArmed(func() bool {
				return ready() || c.watch.Fired() != f || ctx.Err() != nil || c.ring.ProducerID() != id
			})
			changed := c.watch.Fired() != f || c.ring.ProducerID() != id
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
			c.ring.ConsumerLostProducer() // counted once per producer claim
			limit = goneSince.Add(c.opt.PeerTimeout)
			if !now.Before(limit) {
				return errProducerGone{what: "is gone"}
			}
		default:
			goneSince = time.Time{}
			// The claim is read before the segment: a producer removes the
			// segment before it gives its claim up, so a claim given up
			// after this read is seen by the sleep, and one given up before
			// it comes with the segment's removal, seen here.
			c.judgedID = c.ring.ProducerID()
			// A live producer role on a ring whose segment was removed is
			// a new producer's, on a new segment this consumer never sees
			// (its producer closed without ending the stream): waiting
			// for it would wait for ever, and it for us.
			if c.segmentRemoved() {
				return errProducerGone{what: "removed the ring without ending its stream"}
			}
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
	c.ring.ConsumerLostProducer()
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

// segmentRemoved reports whether the segment this consumer attached is
// marked for removal (SHM_DEST): its producer removed the ring. A failed
// look says no: the other checks go on.
func (c *Consumer) segmentRemoved() bool {
	info, err := c.seg.Stat()
	return err == nil && info.Removed
}
