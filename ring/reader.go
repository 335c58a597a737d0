package ring

import (
	"io"
	"sync"
)

// Reader is the consumer side of a ring. There is one Reader per ring at a time; ring
// does not enforce it (the consumer package holds the consumer role lock). All methods
// are safe for concurrent use: typically one goroutine acquires and hands items to
// workers, which Verify and Release them in any order.
//
// A Reader owns the ring's tail. It keeps, in private memory, which items it acquired
// and released; the shared tail advances only over a contiguous run of released items.
// A new Reader (a takeover consumer) starts at the shared tail, so the items its
// predecessor acquired or released out of order but did not pass the tail over are
// delivered again (at-least-once), and none is lost.
type Reader struct {
	r  *Ring
	mu sync.Mutex
	// Guarded by mu.
	tail    uint64 // every item below tail is released; equal to the shared tail
	next    uint64 // sequence number of the next Acquire
	pending int    // acquired, not yet released
	st      []slotState
}

// slotState is the Reader's private record of the item in one slot.
type slotState struct {
	seq    uint64
	length uint64
	state  uint8
}

const (
	stateFree uint8 = iota
	stateAcquired
	stateReleased
)

// Item is an acquired item: sequence number, the CRC32C its descriptor carries, and
// its bytes. From Acquire, Data is a view of the shared slot (len = committed length,
// capacity limited to it), valid until the item is released; from AcquireCopy it is
// the caller's buffer.
type Item struct {
	Seq  uint64
	CRC  uint32
	Data []byte
}

// Reader returns a Reader that starts at the ring's tail: the oldest unreleased item.
func (r *Ring) Reader() *Reader {
	t := r.h.tail.Load()
	return &Reader{r: r, tail: t, next: t, st: make([]slotState, r.g.slots)}
}

// Acquire returns the next published item as a view of its slot. It validates the
// indices and the item's descriptor (sequence number, length within the slot, flags)
// but does NOT check the CRC: the caller must call Verify (on any goroutine) before
// using Data, and must not deliver the data when Verify fails.
//
// Errors: ErrEmpty (unwrapped) when nothing new is published yet; io.EOF (unwrapped)
// once the stream ended and every item was acquired; ErrSequence or ErrCorrupt when
// the next descriptor is bad, and ErrIndices when head, tail or the end word are
// inconsistent. After an error nothing is acquired; a bad descriptor stays bad, so the
// consumer stops at that item.
func (rd *Reader) Acquire() (Item, error) {
	rd.mu.Lock()
	seq, length, crc, err := rd.peekLocked("acquire item")
	if err != nil {
		rd.mu.Unlock()
		return Item{}, err
	}
	rd.markLocked(seq, length)
	rd.mu.Unlock()
	return Item{Seq: seq, CRC: crc, Data: rd.r.slot(seq)[:length:length]}, nil
}

// AcquireCopy is Acquire in copying mode (verify before delivering): it copies the item into dst and
// checks the CRC32C of the copy, so the returned Data (= dst[:length]) is exactly what
// was verified, whatever happens to the shared slot afterwards. On a mismatch it counts
// an integrity error and returns the item with ErrIntegrity: the item is acquired (and
// must be released) but its data must not be delivered. ErrTooLarge, with nothing
// acquired, when dst is shorter than the item. Other errors are those of Acquire.
func (rd *Reader) AcquireCopy(dst []byte) (Item, error) {
	rd.mu.Lock()
	seq, length, crc, err := rd.peekLocked("acquire item")
	if err != nil {
		rd.mu.Unlock()
		return Item{}, err
	}
	if uint64(len(dst)) < length {
		rd.mu.Unlock()
		return Item{}, errorf("acquire item", "destination", ErrTooLarge, "item %d has %d bytes, the buffer %d", seq, length, len(dst))
	}
	rd.markLocked(seq, length)
	rd.mu.Unlock()
	data := dst[:length]
	got := copyCRCDst(data, rd.r.slot(seq)[:length])
	it := Item{Seq: seq, CRC: crc, Data: data}
	if got != crc {
		return it, rd.integrityError(it, got)
	}
	return it, nil
}

// betweenEndAndHead, when set by a test, runs between Acquire's loads of the end word
// and head, to show their order matters.
var betweenEndAndHead func()

// peekLocked validates the indices and the next item's descriptor.
func (rd *Reader) peekLocked(op string) (seq, length uint64, crc uint32, err error) {
	h, g := rd.r.h, &rd.r.g
	end := h.end.Load() // end before head: a head store precedes the end store
	if betweenEndAndHead != nil {
		betweenEndAndHead()
	}
	head := h.head.Load()
	if head < rd.next || head-rd.tail > g.slots {
		return 0, 0, 0, errorf(op, "head", ErrIndices, "head %d, tail %d, next %d: want next <= head <= tail+%d", head, rd.tail, rd.next, g.slots)
	}
	ended := end&endedBit != 0
	if ended && end&^endedBit != head {
		return 0, 0, 0, errorf(op, "end", ErrIndices, "the stream ended at %d, but head is %d", end&^endedBit, head)
	}
	if head == rd.next {
		if ended {
			return 0, 0, 0, io.EOF
		}
		return 0, 0, 0, ErrEmpty
	}
	seq = rd.next
	d := rd.r.desc(seq)
	dseq, length, crc, flags := d.seq.Load(), d.length.Load(), d.crc.Load(), d.flags.Load()
	if dseq != seq {
		return 0, 0, 0, errorf(op, "descriptor", ErrSequence, "item %d: descriptor says %d", seq, dseq)
	}
	if length > g.slotSize {
		return 0, 0, 0, errorf(op, "descriptor", ErrCorrupt, "item %d: length %d exceeds the slot size %d", seq, length, g.slotSize)
	}
	if flags != descCommitted {
		return 0, 0, 0, errorf(op, "descriptor", ErrCorrupt, "item %d: flags %#x", seq, flags)
	}
	return seq, length, crc, nil
}

// markLocked records item seq as acquired.
func (rd *Reader) markLocked(seq, length uint64) {
	rd.st[seq%rd.r.g.slots] = slotState{seq: seq, length: length, state: stateAcquired}
	rd.next++
	rd.pending++
}

// Verify checks it.Data against it.CRC. On a mismatch it counts an integrity error in
// the header and returns ErrIntegrity naming the sequence number and both checksums;
// the data must then not be delivered. Verify only reads: call it from any goroutine.
// On a view from Acquire it checks the shared slot as it is now (verify before delivering: a writer
// with access to the memory can still change it afterwards; AcquireCopy cannot be fooled
// that way).
func (rd *Reader) Verify(it Item) error {
	if got := CRC(it.Data); got != it.CRC {
		return rd.integrityError(it, got)
	}
	return nil
}

// integrityError counts an integrity error and describes it.
func (rd *Reader) integrityError(it Item, got uint32) error {
	rd.r.h.integrity.Add(1)
	return errorf("verify item", "crc32c", ErrIntegrity, "item %d (%d bytes): computed %#08x, descriptor says %#08x", it.Seq, len(it.Data), got, it.CRC)
}

// Release gives item seq back. Items may be released in any order and from any
// goroutine; the shared tail advances (release store) over the contiguous run of
// released items at its front, which hands those slots back to the producer. Release
// counts the item and its bytes in Stats before moving the tail. Releasing a sequence
// number this Reader has not acquired, or releasing twice, fails with ErrNotAcquired.
func (rd *Reader) Release(seq uint64) error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	n := rd.r.g.slots
	if seq < rd.tail || seq >= rd.next {
		return errorf("release item", "", ErrNotAcquired, "item %d is not in the acquired range %d..%d", seq, rd.tail, rd.next)
	}
	s := &rd.st[seq%n]
	if s.state != stateAcquired || s.seq != seq {
		return errorf("release item", "", ErrNotAcquired, "item %d was already released", seq)
	}
	s.state = stateReleased
	rd.pending--
	h := rd.r.h
	h.items.Add(1)
	h.bytes.Add(s.length)
	tail := rd.tail
	for tail < rd.next {
		s := &rd.st[tail%n]
		if s.state != stateReleased || s.seq != tail {
			break
		}
		s.state = stateFree
		tail++
	}
	if tail != rd.tail {
		rd.tail = tail
		h.tail.Store(tail) // release: our reads of the slots happen before their reuse
	}
	return nil
}

// Pending returns the number of items acquired and not yet released.
func (rd *Reader) Pending() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.pending
}

// Next returns the sequence number the next Acquire will return.
func (rd *Reader) Next() uint64 {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.next
}
