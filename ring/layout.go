package ring

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
)

// Layout constants. Changing any of them, or any struct below, changes the shared-memory
// format: bump Version and regenerate testdata/layout.golden.
//
// One kind of change keeps the version: a new word in what was padding, which Format
// has always zeroed and no reader ever looked at. The live counters (Counters, on the
// head and tail lines) came that way: a ring formatted by a build without them holds
// zeros there, which read as "nothing counted yet", and a build without them ignores
// them, so rings of either build open in the other and only the counters differ.
const (
	// Magic is the first 8 bytes of a formatted ring, in this byte order. It is stored
	// last by Format, so a buffer whose first word is still zero is "not formatted".
	Magic = "SHMPCRNG"
	// Version is the layout version stored after the magic. Open refuses any other.
	Version uint32 = 1
	// MaxNameLen is the longest NAME a header holds, in bytes.
	MaxNameLen = 64
	// MaxSlots bounds the slot count, so that a hostile header cannot make a Reader
	// allocate without limit and descriptor offsets cannot overflow.
	MaxSlots = 1 << 20
	// PageSize is the alignment of the data area and of every slot, unless the slot
	// size is a multiple of HugePageSize.
	PageSize = 4 << 10
	// HugePageSize is the alignment used when the slot size is a multiple of it, so a
	// slot backed by huge pages starts on a huge page.
	HugePageSize = 2 << 20
	// CacheLine is the distance kept between words written by different sides.
	CacheLine = 64
	// AppWords is the number of application words in the header (AppWord(0..AppWords-1)).
	AppWords = 8
)

// Header flags (Config.Flags, Ring.Flags). ring stores them and does not act on them;
// they record how the producer set up the memory, for `shmpc ls` and for a resuming
// producer that must match them.
const (
	FlagHuge     uint32 = 1 << iota // the segment is backed by huge pages
	FlagLocked                      // the segment is mlocked
	FlagMadvise                     // madvise hints were applied
	FlagPretouch                    // the pages were touched at creation
)

// descCommitted is set in a descriptor's flags by every commit. A live descriptor
// without it, or with any other bit, is corrupt.
const (
	descCommitted uint32 = 1
	descKnown            = descCommitted
)

// endedBit marks the end-of-stream word as ended; the low 63 bits hold the final count.
const endedBit uint64 = 1 << 63

// magicWord is Magic as the native-endian word that puts its bytes in order in memory.
var magicWord = binary.NativeEndian.Uint64([]byte(Magic))

// header is the start of every ring. All fields are typed atomics: the header lives in
// memory shared with another process, so every access goes through sync/atomic. Words
// written by different sides (head by the producer, tail by the consumer, the doorbells
// by whichever side sleeps) sit on separate cache lines. Offsets are in the comments and
// pinned by testdata/layout.golden.
type header struct {
	// Lines 0-2: written by Format before magic, read-only afterwards.
	magic       atomic.Uint64    // 0: magicWord, stored last; 0 = not formatted
	version     atomic.Uint32    // 8
	headerSize  atomic.Uint32    // 12: sizeof(header)
	slots       atomic.Uint64    // 16
	slotSize    atomic.Uint64    // 24: usable bytes per slot
	slotStride  atomic.Uint64    // 32: distance between slots (slotSize rounded up to slotAlign)
	slotAlign   atomic.Uint64    // 40: PageSize or HugePageSize
	descOffset  atomic.Uint64    // 48
	dataOffset  atomic.Uint64    // 56
	totalSize   atomic.Uint64    // 64
	flags       atomic.Uint32    // 72
	ownerUID    atomic.Uint32    // 76
	streamItems atomic.Uint64    // 80: 0 = unknown
	streamBytes atomic.Uint64    // 88: 0 = unknown
	nameLen     atomic.Uint64    // 96
	_           [3]uint64        // 104
	name        [8]atomic.Uint64 // 128: MaxNameLen bytes, zero padded

	// Line 3: stream state, each written once per stream.
	end     atomic.Uint64 // 192: endedBit | final count
	drained atomic.Uint64 // 200: 1 once the consumer released every item after the end
	_       [6]uint64

	// Lines 4-5: who holds each role, for messages and `ls` (seqlocked).
	producer identityWords // 256
	consumer identityWords // 320

	// Line 6: consumer-side counters.
	items     atomic.Uint64 // 384: items released (delivered)
	bytes     atomic.Uint64 // 392: bytes of the items released
	integrity atomic.Uint64 // 400: integrity errors seen by Verify
	_         [5]uint64

	// Line 7: application words.
	app [AppWords]atomic.Uint64 // 448

	// Lines 8-11: the hot words, one per line. The head and tail lines also hold the
	// live counters their writer keeps (Counters): each side's words on the line it
	// writes anyway, so counting costs no cache line the other side writes.
	head            atomic.Uint64 // 512: items published (producer)
	committedBytes  atomic.Uint64 // 520: bytes of the items committed (producer)
	producerSleeps  atomic.Uint64 // 528: producer's waits on its semaphore (ProducerSleeps)
	producerWakes   atomic.Uint64 // 536: producer's posts that woke the consumer (ProducerWakes)
	producerLosses  atomic.Uint64 // 544: consumers the producer found gone (ProducerLostConsumer)
	producerLostGen atomic.Uint64 // 552: claim generation of the consumer last counted lost, +1 (0: none)
	_               [2]uint64
	tail            atomic.Uint64 // 576: items released (consumer)
	consumerSleeps  atomic.Uint64 // 584: consumer's waits on its semaphore (ConsumerSleeps)
	consumerWakes   atomic.Uint64 // 592: consumer's posts that woke the producer (ConsumerWakes)
	consumerLosses  atomic.Uint64 // 600: producers the consumer found gone (ConsumerLostProducer)
	consumerLostGen atomic.Uint64 // 608: claim generation of the producer last counted lost, +1 (0: none)
	_               [3]uint64
	consumerWaiting atomic.Uint32 // 640: doorbell, consumer asleep waiting for items
	_               [15]uint32
	producerWaiting atomic.Uint32 // 704: doorbell, producer asleep waiting for space
	_               [15]uint32
}

// identityWords holds one role's Identity under a sequence lock: seq is odd while a
// write is in progress.
type identityWords struct {
	seq   atomic.Uint64 // +0
	pid   atomic.Uint32 // +8
	_     uint32
	start atomic.Uint64 // +16
	gen   atomic.Uint64 // +24
	_     [4]uint64
}

// descriptor describes the item in one slot. It is written by the producer before the
// head store that publishes the item and read by the consumer after the head load.
type descriptor struct {
	seq    atomic.Uint64 // 0: sequence number of the item in the slot
	length atomic.Uint64 // 8: committed length, <= slotSize
	crc    atomic.Uint32 // 16: CRC32C of the committed bytes
	flags  atomic.Uint32 // 20: descCommitted
	_      [5]uint64     // 24
}

// geometry is everything derived from (slots, slotSize). Open recomputes it and
// compares it with the header; a Ring keeps its own copy, so later changes to the shared
// header cannot move a slice bound.
type geometry struct {
	slots    uint64
	slotSize uint64
	stride   uint64
	align    uint64
	descOff  uint64
	dataOff  uint64
	total    uint64
}

// computeGeometry derives the layout of a ring of slots slots of slotSize bytes. Every
// step is overflow-checked, and the total fits in an int.
func computeGeometry(op string, slots, slotSize uint64) (geometry, error) {
	if slots < 1 || slots > MaxSlots {
		return geometry{}, errorf(op, "slots", ErrGeometry, "%d is not in 1..%d", slots, MaxSlots)
	}
	if slotSize < 1 || slotSize > math.MaxInt64/2 {
		return geometry{}, errorf(op, "slot size", ErrGeometry, "%d is not in 1..%d", slotSize, uint64(math.MaxInt64/2))
	}
	g := geometry{slots: slots, slotSize: slotSize, align: PageSize, descOff: uint64(headerSize)}
	if slotSize%HugePageSize == 0 {
		g.align = HugePageSize
	}
	g.stride = roundUp(slotSize, g.align)
	g.dataOff = roundUp(g.descOff+slots*descriptorSize, g.align) // slots <= MaxSlots: no overflow
	hi, data := bits.Mul64(slots, g.stride)
	total, carry := bits.Add64(g.dataOff, data, 0)
	if hi != 0 || carry != 0 || total > math.MaxInt {
		return geometry{}, errorf(op, "size", ErrGeometry, "%d slots of %d bytes overflow the address space", slots, slotSize)
	}
	g.total = total
	return g, nil
}

// roundUp rounds v up to a multiple of the power of two a; v + a must not overflow
// (callers bound v well below 2^63).
func roundUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// Size returns the number of bytes a ring of slots slots of slotSize bytes needs: the
// header, one 64-byte descriptor per slot, and the slots, each starting on a PageSize
// boundary (HugePageSize when slotSize is a multiple of it). It fails with ErrGeometry
// when a value is out of range or the size overflows an int.
func Size(slots, slotSize int) (int, error) {
	if slots < 1 || slotSize < 1 {
		return 0, errorf("size ring", "geometry", ErrGeometry, "%d slots of %d bytes: both must be at least 1", slots, slotSize)
	}
	g, err := computeGeometry("size ring", uint64(slots), uint64(slotSize))
	if err != nil {
		return 0, err
	}
	return int(g.total), nil
}

// field names a header or descriptor field for the layout table and Check.
type field struct {
	name   string
	offset uintptr
	size   uintptr
}

func (f field) String() string {
	return f.name + " offset " + strconv.FormatUint(uint64(f.offset), 10) + " size " + strconv.FormatUint(uint64(f.size), 10)
}
