package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
)

// Slot is a reserved slot: write the item into Buf, then Commit or
// CommitCRC. Buf is the whole slot (the slot size) and belongs to the
// producer until the commit.
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

// Commit publishes the reserved slot's first n bytes, with the CRC32C of
// the slot as it is now: Commit reads the n bytes back from the slot to
// checksum them (a second pass over memory), and a change another process
// made to the slot before the Commit is checksummed with the rest. CommitCRC
// with a checksum taken from the data as it was written avoids both.
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

// CommitCRC publishes the reserved slot's first n bytes with crc, the
// CRC32C the caller computed from the data itself, not read back from the
// slot: ring.CRC of a private buffer, ring.CopyCRC while copying it in, or
// ring.UpdateCRC of each piece right after writing it into the slot (start
// from 0). A neighbour that scribbles on the slot before the commit is then
// caught by the consumer's check.
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
// it, waiting while the ring is full as Reserve does. It checksums data, not
// the slot, in the same pass as the copy. data is the caller's again when
// Send returns.
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
