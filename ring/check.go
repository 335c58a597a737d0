package ring

import (
	"errors"
	"fmt"
	"math/bits"
)

// maxCheckErrors bounds the descriptor errors Check lists one by one.
const maxCheckErrors = 16

// Check verifies every invariant of the header and the descriptors and returns what is
// wrong, joined (nil when all hold): magic, version and geometry unchanged since Open;
// the name's padding; 0 <= head-tail <= slots; ended implies final == head; drained
// implies ended and tail == final; items released >= tail; bytes <= items*slot size;
// each live item's descriptor (tail <= seq < head) carries its sequence number, a length
// within the slot and the committed flag; each free slot's descriptor holds the last
// sequence number committed to it, a partial write of the next one (head) or, never
// written, zero.
//
// The header checks are safe on a live ring; the descriptor checks describe a quiet one
// (no commit or release in progress), as after a test step or with both roles held.
func (r *Ring) Check() error {
	const op = "check ring"
	var errs []error
	add := func(field string, sentinel error, format string, args ...any) {
		errs = append(errs, errorf(op, field, sentinel, format, args...))
	}
	h := r.h
	if err := checkMagic(op, h); err != nil {
		errs = append(errs, err)
	}
	if v := h.version.Load(); v != Version {
		add("version", ErrVersion, "%d, want %d", v, Version)
	}
	if g, err := storedGeometry(op, h, uint64(len(r.buf))); err != nil {
		errs = append(errs, err)
	} else if g != r.g {
		add("geometry", ErrCorrupt, "changed since the ring was opened: %+v, was %+v", g, r.g)
	}
	if name, err := storedName(op, h); err != nil {
		errs = append(errs, err)
	} else if name != r.name {
		add("name", ErrCorrupt, "%q, was %q at open", name, r.name)
	}
	if err := checkIndices(op, h, r.g.slots); err != nil {
		errs = append(errs, err)
	}
	tail := h.tail.Load()
	head := h.head.Load()
	// bytes before items: Release counts an item before its bytes, so on a live ring
	// the bytes read are never those of items not yet counted in the items read.
	bytes := h.bytes.Load()
	items := h.items.Load()
	if items < tail {
		add("items", ErrCorrupt, "%d released, fewer than tail %d", items, tail)
	}
	if hi, lim := bits.Mul64(items, r.g.slotSize); hi == 0 && bytes > lim {
		add("bytes", ErrCorrupt, "%d bytes in %d items of at most %d", bytes, items, r.g.slotSize)
	}
	if tail <= head && head-tail <= r.g.slots {
		errs = append(errs, r.checkDescriptors(op, head, tail)...)
	}
	return errors.Join(errs...)
}

// checkDescriptors checks every descriptor against head and tail (see Check).
func (r *Ring) checkDescriptors(op string, head, tail uint64) []error {
	var errs []error
	more := 0
	add := func(i uint64, sentinel error, format string, args ...any) {
		if len(errs) == maxCheckErrors {
			more++
			return
		}
		errs = append(errs, errorf(op, fmt.Sprintf("descriptor %d", i), sentinel, format, args...))
	}
	n := r.g.slots
	for i := range n {
		d := &r.descs[i]
		seq, length, flags := d.seq.Load(), d.length.Load(), d.flags.Load()
		if length > r.g.slotSize {
			add(i, ErrCorrupt, "length %d exceeds the slot size %d", length, r.g.slotSize)
		}
		if flags&^descKnown != 0 {
			add(i, ErrCorrupt, "unknown flags %#x", flags)
		}
		// last: the newest sequence number committed to slot i, if any.
		var last uint64
		committed := head > i
		if committed {
			last = i + (head-1-i)/n*n
		}
		switch {
		case committed && last >= tail: // live item
			if seq != last {
				add(i, ErrSequence, "holds sequence %d, but live item %d is in this slot", seq, last)
			}
			if flags != descCommitted {
				add(i, ErrCorrupt, "live item %d lacks the committed flag (flags %#x)", last, flags)
			}
		case seq == head && head%n == i: // partial write of the next item
		case committed && seq == last:
		case !committed && seq == 0:
		default:
			add(i, ErrSequence, "holds sequence %d; head %d, tail %d allow only %s", seq, head, tail, r.allowedFree(i, head))
		}
	}
	if more > 0 {
		errs = append(errs, errorf(op, "descriptors", ErrCorrupt, "%d more errors", more))
	}
	return errs
}

// allowedFree describes the sequence numbers a free slot's descriptor may hold.
func (r *Ring) allowedFree(i, head uint64) string {
	var s string
	if head > i {
		s = fmt.Sprint(i + (head-1-i)/r.g.slots*r.g.slots)
	} else {
		s = "0"
	}
	if head%r.g.slots == i {
		s += fmt.Sprintf(" or %d", head)
	}
	return s
}
