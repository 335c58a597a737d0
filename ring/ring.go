package ring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/shmpc/shmpc/internal/errline"
)

// Config is the creation-time description of a ring, stored in its header by Format.
type Config struct {
	// Name is the ring's NAME, 1 to MaxNameLen bytes. ring stores it and checks only
	// its length; the caller enforces the character set.
	Name string
	// Slots is the number of slots, 1 to MaxSlots.
	Slots int
	// SlotSize is the usable size of each slot in bytes, at least 1. The caller may
	// demand multiples of PageSize; ring only rounds the distance between slots up to
	// PageSize (HugePageSize when SlotSize is a multiple of it).
	SlotSize int
	// Flags records how the memory was set up (FlagHuge, FlagLocked, ...). ring stores
	// any value and does not act on it.
	Flags uint32
	// OwnerUID is the uid of the producer that owns the ring.
	OwnerUID uint32
	// StreamItems and StreamBytes are the stream's intended totals (0 = unknown), kept
	// for a producer that resumes the stream.
	StreamItems uint64
	StreamBytes uint64
}

// Ring is a view of a formatted ring in a byte buffer (a shared segment in production).
// It keeps a private copy of the geometry and the creation-time header fields read and
// validated by Open, so a later change to the shared header cannot move a slice bound;
// the changing words (indices, state, counters) are read from the buffer on each call.
//
// A Ring is safe for concurrent use. It does not own the buffer: the caller keeps the
// memory mapped for as long as the Ring, its Writers, Readers, Slots and Items are used.
// There is no Close; unmapping the buffer ends everything.
type Ring struct {
	buf   []byte
	h     *header
	descs []descriptor
	g     geometry

	name        string
	flags       uint32
	ownerUID    uint32
	streamItems uint64
	streamBytes uint64
}

// Format creates an empty ring in buf according to cfg and returns a Ring on it. It
// first clears the magic (so a concurrent Open sees "not formatted", never half a
// header), zeroes the header and the descriptors with atomic stores, writes the fields,
// and stores the magic last. The slots' contents are left as they are.
//
// buf must be 8-byte aligned and at least Size(cfg.Slots, cfg.SlotSize) bytes long.
// Nobody may use the buffer while Format runs; afterwards any process may Open it.
func Format(buf []byte, cfg Config) (*Ring, error) { return format(buf, cfg, noCrash) }

// formatSteps is the number of stages of Format; the crash test stops before each.
const formatSteps = 6

// format is Format, stopped before stage stop (0 <= stop < formatSteps) by the crash
// test as a killed process would be; stop < 0 runs every stage.
func format(buf []byte, cfg Config, stop int) (*Ring, error) {
	const op = "format ring"
	if len(cfg.Name) < 1 || len(cfg.Name) > MaxNameLen {
		return nil, errorf(op, "name", ErrConfig, "%d bytes is not in 1..%d", len(cfg.Name), MaxNameLen)
	}
	if cfg.Slots < 1 || cfg.SlotSize < 1 {
		return nil, errorf(op, "geometry", ErrGeometry, "%d slots of %d bytes: both must be at least 1", cfg.Slots, cfg.SlotSize)
	}
	g, err := computeGeometry(op, uint64(cfg.Slots), uint64(cfg.SlotSize))
	if err != nil {
		return nil, err
	}
	if err := checkBuffer(op, buf, g.total); err != nil {
		return nil, err
	}
	h := headerOf(buf)
	descs := descriptorsOf(buf[g.descOff : g.descOff+g.slots*descriptorSize])
	if stop == 0 {
		return nil, errCrashed
	}
	h.magic.Store(0)
	if stop == 1 {
		return nil, errCrashed
	}
	words := wordsOf(buf[wordSize:headerSize])
	for i := range words {
		words[i].Store(0)
	}
	if stop == 2 {
		return nil, errCrashed
	}
	for i := range descs {
		d := &descs[i]
		d.seq.Store(0)
		d.length.Store(0)
		d.crc.Store(0)
		d.flags.Store(0)
	}
	if stop == 3 {
		return nil, errCrashed
	}
	h.version.Store(Version)
	h.headerSize.Store(uint32(headerSize))
	h.slots.Store(g.slots)
	h.slotSize.Store(g.slotSize)
	h.slotStride.Store(g.stride)
	h.slotAlign.Store(g.align)
	h.descOffset.Store(g.descOff)
	h.dataOffset.Store(g.dataOff)
	h.totalSize.Store(g.total)
	h.flags.Store(cfg.Flags)
	h.ownerUID.Store(cfg.OwnerUID)
	h.streamItems.Store(cfg.StreamItems)
	h.streamBytes.Store(cfg.StreamBytes)
	if stop == 4 {
		return nil, errCrashed
	}
	var name [MaxNameLen]byte
	copy(name[:], cfg.Name)
	for i := range h.name {
		h.name[i].Store(binary.NativeEndian.Uint64(name[i*8:]))
	}
	h.nameLen.Store(uint64(len(cfg.Name)))
	if stop == 5 {
		return nil, errCrashed
	}
	h.magic.Store(magicWord) // publishes everything above (release)
	return &Ring{
		buf: buf, h: h, descs: descs, g: g,
		name: cfg.Name, flags: cfg.Flags, ownerUID: cfg.OwnerUID,
		streamItems: cfg.StreamItems, streamBytes: cfg.StreamBytes,
	}, nil
}

// checkBuffer checks that buf holds the header and need bytes and is 8-byte aligned.
func checkBuffer(op string, buf []byte, need uint64) error {
	if uint64(len(buf)) < uint64(headerSize) || uint64(len(buf)) < need {
		return errorf(op, "buffer", ErrGeometry, "%d bytes is shorter than the %d the ring needs", len(buf), max(need, uint64(headerSize)))
	}
	if !aligned8(buf) {
		return errorf(op, "buffer", ErrGeometry, "address is not 8-byte aligned")
	}
	return nil
}

// Open validates the ring in buf and returns a view of it. Everything is read as
// untrusted input: the magic (ErrNotFormatted when zero, ErrBadMagic otherwise), the
// version (ErrVersion), the geometry recomputed from slots and slot size and compared
// with every stored offset and with len(buf) (ErrGeometry), the name length (ErrCorrupt)
// and the indices and stream state (ErrIndices). Open never panics, whatever the bytes.
//
// Open may run while a producer and a consumer use the ring: the index check reads the
// words in the reverse of the order they are written, so a live ring never fails it.
// Descriptors are checked per item by Reader.Acquire, and all at once by Check.
func Open(buf []byte) (*Ring, error) {
	const op = "open ring"
	if err := checkBuffer(op, buf, 0); err != nil {
		return nil, err
	}
	h := headerOf(buf)
	if err := checkMagic(op, h); err != nil { // acquire: everything Format wrote is visible
		return nil, err
	}
	if v := h.version.Load(); v != Version {
		return nil, errorf(op, "version", ErrVersion, "layout version %d, this build reads %d", v, Version)
	}
	g, err := storedGeometry(op, h, uint64(len(buf)))
	if err != nil {
		return nil, err
	}
	name, err := storedName(op, h)
	if err != nil {
		return nil, err
	}
	if err := checkIndices(op, h, g.slots); err != nil {
		return nil, err
	}
	return &Ring{
		buf: buf, h: h, g: g,
		descs:       descriptorsOf(buf[g.descOff : g.descOff+g.slots*descriptorSize]),
		name:        name,
		flags:       h.flags.Load(),
		ownerUID:    h.ownerUID.Load(),
		streamItems: h.streamItems.Load(),
		streamBytes: h.streamBytes.Load(),
	}, nil
}

// checkMagic classifies the magic word: ErrNotFormatted when zero (never formatted, or
// Format was interrupted), ErrBadMagic when foreign.
func checkMagic(op string, h *header) error {
	switch m := h.magic.Load(); m {
	case magicWord:
		return nil
	case 0:
		return &Error{Op: op, Field: "magic", Reason: "first word is zero", Err: ErrNotFormatted}
	default:
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], m)
		return errorf(op, "magic", ErrBadMagic, "%q is not %q", b[:], Magic)
	}
}

// storedGeometry recomputes the geometry from the header's slot count and size and
// checks every stored derived value against it and the buffer length.
func storedGeometry(op string, h *header, bufLen uint64) (geometry, error) {
	if hs := h.headerSize.Load(); hs != uint32(headerSize) {
		return geometry{}, errorf(op, "header size", ErrGeometry, "%d, want %d", hs, headerSize)
	}
	g, err := computeGeometry(op, h.slots.Load(), h.slotSize.Load())
	if err != nil {
		return geometry{}, err
	}
	for _, c := range []struct {
		name        string
		stored, cmp uint64
	}{
		{"slot stride", h.slotStride.Load(), g.stride},
		{"slot alignment", h.slotAlign.Load(), g.align},
		{"descriptor offset", h.descOffset.Load(), g.descOff},
		{"data offset", h.dataOffset.Load(), g.dataOff},
		{"total size", h.totalSize.Load(), g.total},
	} {
		if c.stored != c.cmp {
			return geometry{}, errorf(op, c.name, ErrGeometry, "%d, but %d slots of %d bytes need %d", c.stored, g.slots, g.slotSize, c.cmp)
		}
	}
	if g.total > bufLen {
		return geometry{}, errorf(op, "total size", ErrGeometry, "%d bytes, but the buffer has %d", g.total, bufLen)
	}
	return g, nil
}

// storedName reads and validates the NAME.
func storedName(op string, h *header) (string, error) {
	n := h.nameLen.Load()
	if n < 1 || n > MaxNameLen {
		return "", errorf(op, "name", ErrCorrupt, "length %d is not in 1..%d", n, MaxNameLen)
	}
	var b [MaxNameLen]byte
	for i := range h.name {
		binary.NativeEndian.PutUint64(b[i*8:], h.name[i].Load())
	}
	for i := n; i < MaxNameLen; i++ {
		if b[i] != 0 {
			return "", errorf(op, "name", ErrCorrupt, "byte %d after the %d-byte name is not zero", i, n)
		}
	}
	return string(b[:n]), nil
}

// checkIndices validates head, tail, end and drained. The words are read in the reverse
// of their write order (drained, end, tail, head, tail again), which makes the check
// exact on a quiet ring and free of false alarms on a live one: the head read lies
// between the two tail reads, and tail only grows.
func checkIndices(op string, h *header, slots uint64) error {
	drained := h.drained.Load()
	end := h.end.Load()
	t1 := h.tail.Load()
	head := h.head.Load()
	t2 := h.tail.Load()
	var errs []error
	if t2 < t1 {
		errs = append(errs, errorf(op, "tail", ErrIndices, "went back from %d to %d", t1, t2))
	}
	if head < t1 || (head > t2 && head-t2 > slots) {
		errs = append(errs, errorf(op, "head", ErrIndices, "head %d, tail %d: head-tail is not in 0..%d", head, t1, slots))
	}
	final, ended := end&^endedBit, end&endedBit != 0
	if !ended && end != 0 {
		errs = append(errs, errorf(op, "end", ErrCorrupt, "word %#x has a count but no ended bit", end))
	}
	if ended && final != head {
		errs = append(errs, errorf(op, "end", ErrIndices, "stream ended at %d, but head is %d", final, head))
	}
	switch {
	case drained > 1:
		errs = append(errs, errorf(op, "drained", ErrCorrupt, "word is %d, not 0 or 1", drained))
	case drained == 1 && !ended:
		errs = append(errs, errorf(op, "drained", ErrIndices, "drained, but the stream has not ended"))
	case drained == 1 && t1 != final:
		errs = append(errs, errorf(op, "drained", ErrIndices, "drained, but tail %d is not the final count %d", t1, final))
	}
	return errline.Join(errs)
}

// Name returns the ring's NAME.
func (r *Ring) Name() string { return r.name }

// Slots returns the number of slots.
func (r *Ring) Slots() int { return int(r.g.slots) }

// SlotSize returns the usable bytes of each slot (the largest item).
func (r *Ring) SlotSize() int { return int(r.g.slotSize) }

// TotalSize returns the bytes of the buffer the ring uses (Size of its geometry).
func (r *Ring) TotalSize() int { return int(r.g.total) }

// Flags returns the header flags given to Format.
func (r *Ring) Flags() uint32 { return r.flags }

// OwnerUID returns the owner uid given to Format.
func (r *Ring) OwnerUID() uint32 { return r.ownerUID }

// StreamItems returns the stream's intended item count given to Format (0 = unknown).
func (r *Ring) StreamItems() uint64 { return r.streamItems }

// StreamBytes returns the stream's intended byte count given to Format (0 = unknown).
func (r *Ring) StreamBytes() uint64 { return r.streamBytes }

// Head returns the number of items published (acquire load).
func (r *Ring) Head() uint64 { return r.h.head.Load() }

// Tail returns the number of items released (acquire load).
func (r *Ring) Tail() uint64 { return r.h.tail.Load() }

// End returns the final item count and whether the producer ended the stream.
func (r *Ring) End() (final uint64, ended bool) {
	e := r.h.end.Load()
	return e &^ endedBit, e&endedBit != 0
}

// Drained reports whether the consumer released every item after the end of the stream.
func (r *Ring) Drained() bool { return r.h.drained.Load() == 1 }

// SetDrained records that the consumer released every item of an ended stream. The
// consumer calls it once, after its last Release; Check and Open then hold it to
// "ended and tail == final".
func (r *Ring) SetDrained() { r.h.drained.Store(1) }

// Stats are the consumer-side counters kept in the header. They survive a consumer
// takeover; an item redelivered after a takeover is counted again.
type Stats struct {
	Items           uint64 // items released
	Bytes           uint64 // bytes of the items released
	IntegrityErrors uint64 // CRC mismatches found by Verify or AcquireCopy
}

// Stats returns the counters (each word read atomically, the three not as one).
func (r *Ring) Stats() Stats {
	return Stats{Items: r.h.items.Load(), Bytes: r.h.bytes.Load(), IntegrityErrors: r.h.integrity.Load()}
}

// AppWord returns application word i (0 <= i < AppWords), a shared word ring never
// reads or writes after Format zeroed it; the CLI keeps timestamps there. It panics
// when i is out of range, as an index expression would.
func (r *Ring) AppWord(i int) *atomic.Uint64 {
	if i < 0 || i >= AppWords {
		panic(fmt.Sprintf("ring: AppWord(%d) out of range 0..%d", i, AppWords-1))
	}
	return &r.h.app[i]
}

// ConsumerWaiting returns the doorbell word a consumer sets before it sleeps waiting
// for items, on its own cache line. ring never reads it: the protocol around it (set,
// re-check head, sleep; the producer wakes it when set) belongs to the caller.
func (r *Ring) ConsumerWaiting() *atomic.Uint32 { return &r.h.consumerWaiting }

// ProducerWaiting is ConsumerWaiting for a producer waiting for free slots.
func (r *Ring) ProducerWaiting() *atomic.Uint32 { return &r.h.producerWaiting }

// slot returns the whole of slot seq%slots, capacity limited to the slot.
func (r *Ring) slot(seq uint64) []byte {
	off := r.g.dataOff + (seq%r.g.slots)*r.g.stride
	return r.buf[off : off+r.g.slotSize : off+r.g.slotSize]
}

// desc returns the descriptor of slot seq%slots.
func (r *Ring) desc(seq uint64) *descriptor { return &r.descs[seq%r.g.slots] }
