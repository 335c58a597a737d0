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
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
)

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
		if !drained && p.ring != nil && p.sems != nil {
			// A consumer asleep on the ring must learn that its segment
			// is gone and the stream unfinished: else only this process's
			// death would wake it, and a producer that goes on living, or
			// a successor that takes the role at once, never looks dead.
			// Giving the claim up in the header is what its sleep looks at
			// (a store it sees even if it is not asleep yet); the ring
			// wakes it if it is.
			if id := p.ring.ProducerID(); id.PID == uint32(os.Getpid()) {
				p.ring.SetProducerID(ring.Identity{Gen: id.Gen})
			}
			_ = p.toConsumer.Ring()
		}
		errs = append(errs, p.counters.Detach(p.seg.Detach))
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
