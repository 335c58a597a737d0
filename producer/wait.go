package producer

import (
	"context"
	"fmt"
	"time"

	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/ringobj"
)

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
					p.ring.ProducerLostConsumer()
					return p.peerLost(fmt.Sprintf("consumer of %s made no progress for %v", p.names.Ring, p.opt.StallTimeout))
				}
			} else {
				p.fastWait = true // Reserve's next wait sleeps armed
				if armable {
					return nil
				}
			}
		case !p.watch.Seen() && gen == p.consumerGen && p.ring.Tail() == p.tailAtOpen:
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
			if !ready() {
				p.ring.ProducerLostConsumer() // counted once per consumer claim
			}
			limit = goneSince.Add(p.opt.PeerTimeout)
			// A consumer that drained the stream lets its role go at
			// once: look at the ring again after the lock said "gone".
			if !now.Before(limit) && !ready() {
				p.ring.ProducerLostConsumer()
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
