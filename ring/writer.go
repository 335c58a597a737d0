package ring

import "errors"

// Writer is the producer side of a ring. There is one Writer per ring at a time; ring
// does not enforce it (the producer package holds the producer role lock). A Writer is
// not safe for concurrent use: one goroutine reserves, fills and commits.
//
// A Writer keeps its own copy of head. A new Writer (a resumed producer) starts at the
// ring's head, so a slot its predecessor reserved, or even half committed, but never
// published is simply written again.
type Writer struct {
	r        *Ring
	head     uint64 // next sequence number to publish
	reserved bool
}

// Slot is a reserved slot: the item Seq will be published from Buf, the whole slot
// (len SlotSize), which starts on a PageSize boundary of the buffer (HugePageSize for
// slot sizes that are multiples of it). Buf belongs to the Writer until Commit.
type Slot struct {
	Seq uint64
	Buf []byte
}

// commitSteps is the number of shared-memory writes of a commit; the crash test stops a
// commit before each of them.
const commitSteps = 5

// noCrash makes commit run every step.
const noCrash = -1

// Writer returns a Writer that resumes at the ring's current head.
func (r *Ring) Writer() *Writer {
	return &Writer{r: r, head: r.h.head.Load()}
}

// Reserve returns the slot for the next item. It fails with ErrEnded once the stream
// ended, ErrFull (unwrapped) while every slot holds an unreleased item, and ErrIndices
// when the shared indices are inconsistent or head was moved by someone else. Reserve
// without a Commit in between returns the same slot again.
func (w *Writer) Reserve() (Slot, error) {
	const op = "reserve slot"
	r := w.r
	if e := r.h.end.Load(); e&endedBit != 0 {
		return Slot{}, errorf(op, "end", ErrEnded, "the stream ended at %d", e&^endedBit)
	}
	if h := r.h.head.Load(); h != w.head {
		return Slot{}, errorf(op, "head", ErrIndices, "head is %d, this writer is at %d: another producer?", h, w.head)
	}
	t := r.h.tail.Load() // acquire: the consumer is done with every slot below t
	if t > w.head || w.head-t > r.g.slots {
		return Slot{}, errorf(op, "tail", ErrIndices, "head %d, tail %d: head-tail is not in 0..%d", w.head, t, r.g.slots)
	}
	if w.head-t == r.g.slots {
		return Slot{}, ErrFull
	}
	w.reserved = true
	return Slot{Seq: w.head, Buf: r.slot(w.head)}, nil
}

// Commit publishes the reserved slot's first n bytes as item Seq, with a CRC32C
// computed here over Slot.Buf[:n]. That checksums the slot as it is now, including
// anything another writer of the shared memory scribbled there; a producer that has the
// data in a private buffer should use CopyCRC or CRC on it and CommitCRC (the checksum of the source).
func (w *Writer) Commit(n int) error {
	if !w.reserved {
		return errorf("commit slot", "", ErrNotReserved, "Commit without Reserve")
	}
	if n < 0 || uint64(n) > w.r.g.slotSize {
		return errorf("commit slot", "length", ErrTooLarge, "%d is not in 0..%d", n, w.r.g.slotSize)
	}
	return w.commit(n, CRC(w.r.slot(w.head)[:n]), noCrash)
}

// CommitCRC publishes the reserved slot's first n bytes as item Seq with the given
// CRC32C, which the caller computed from its source data. It writes the descriptor
// (sequence, length, CRC, flags) and then publishes with a single release store of head:
// a producer killed anywhere before that store leaves the item invisible, after it
// complete. ErrTooLarge when n exceeds the slot, ErrNotReserved without Reserve;
// ErrIndices when head was moved, or ErrEnded when the stream was ended, by another
// Writer (a zombie producer): nothing is published then.
func (w *Writer) CommitCRC(n int, crc uint32) error {
	if !w.reserved {
		return errorf("commit slot", "", ErrNotReserved, "CommitCRC without Reserve")
	}
	if n < 0 || uint64(n) > w.r.g.slotSize {
		return errorf("commit slot", "length", ErrTooLarge, "%d is not in 0..%d", n, w.r.g.slotSize)
	}
	return w.commit(n, crc, noCrash)
}

// errCrashed is returned by a commit or format stopped by the crash test.
var errCrashed = errors.New("stopped by the crash test")

// commit performs the commit's shared writes in order and, for the crash test, stops
// before step stop (0 <= stop < commitSteps) as a killed producer would; stop < 0 runs
// them all. n has been validated.
func (w *Writer) commit(n int, crc uint32, stop int) error {
	d := w.r.desc(w.head)
	if stop == 0 {
		return errCrashed
	}
	d.seq.Store(w.head)
	if stop == 1 {
		return errCrashed
	}
	d.length.Store(uint64(n))
	if stop == 2 {
		return errCrashed
	}
	d.crc.Store(crc)
	if stop == 3 {
		return errCrashed
	}
	d.flags.Store(descCommitted)
	if stop == 4 {
		return errCrashed
	}
	if e := w.r.h.end.Load(); e&endedBit != 0 { // ended by another Writer meanwhile
		w.reserved = false
		return errorf("commit slot", "end", ErrEnded, "the stream ended at %d", e&^endedBit)
	}
	// The byte counter first: it is on head's line, which the store below needs in
	// this core's cache anyway (counted after it, a consumer's look at head in between
	// would cost a second transfer of the line). Undone if the item is not published;
	// a producer killed between the two counts the item's bytes again when it resumes.
	w.r.h.committedBytes.Add(uint64(n))
	// The publication: one release store (a CAS, which also catches a second producer).
	if !w.r.h.head.CompareAndSwap(w.head, w.head+1) {
		w.r.h.committedBytes.Add(-uint64(n))
		w.reserved = false
		return errorf("commit slot", "head", ErrIndices, "head moved away from %d under this writer: another producer?", w.head)
	}
	w.head++
	w.reserved = false
	return nil
}

// End ends the stream at the current head: the items committed so far are the whole
// stream, a reserved slot is dropped, and Reserve fails with ErrEnded from now on. End
// is idempotent; it fails with ErrIndices when the ring ended at another count or head
// was moved by someone else.
func (w *Writer) End() error {
	const op = "end stream"
	h := w.r.h
	e := h.end.Load()
	head := h.head.Load()
	if e&endedBit != 0 {
		if e&^endedBit != head {
			return errorf(op, "end", ErrIndices, "the stream ended at %d, but head is %d", e&^endedBit, head)
		}
		w.reserved = false
		return nil
	}
	if head != w.head {
		return errorf(op, "head", ErrIndices, "head is %d, this writer is at %d: another producer?", head, w.head)
	}
	if head&endedBit != 0 {
		return errorf(op, "head", ErrIndices, "head %d does not fit the end-of-stream word", head)
	}
	h.end.Store(endedBit | head)
	w.reserved = false
	return nil
}
