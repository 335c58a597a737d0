// Package ring is the layout and protocol of shmpc's slot ring over a []byte: a System V
// segment shared by a producer and a consumer process in production, ordinary heap
// memory in tests. It never calls the OS, and imports nothing of this project
// but internal/crc32c (its checksums), which needs golang.org/x/sys/cpu.
//
// # Layout
//
// A ring is three areas, all offsets computed by the compiler (unsafe.Sizeof and
// Offsetof, in unsafe.go) and pinned by testdata/layout.golden:
//
//	0                 header (768 bytes, 12 cache lines)
//	768               descriptors: one 64-byte descriptor per slot (sequence, length,
//	                  CRC32C, flags)
//	DataOffset        the slots: slot i at DataOffset + i*stride
//
// The header holds, in order: the magic "SHMPCRNG" and layout version; the geometry
// (header size, slot count, slot size, slot stride and alignment, descriptor and data
// offsets, total size); the flags (FlagHuge, FlagLocked, ...), owner uid, the stream's
// intended totals and the NAME (length + 64 bytes); the stream state (end of stream:
// an ended bit and the final count in one word; drained); the producer's and the
// consumer's Identity; the consumer's counters (items and bytes released, integrity
// errors); eight application words; and, each on its own 64-byte cache line, head
// (items published, written by the producer), tail (items released, written by the
// consumer) and the two doorbell words (consumer waiting, producer waiting), so the two
// sides do not write the same line. The rest of the head line holds the producer's
// live counters (bytes committed, sleeps, wake-ups, peers lost), the rest of the tail
// line the consumer's (see Counters).
//
// DataOffset and the stride between slots are multiples of PageSize (4 KiB), or of
// HugePageSize (2 MiB) when the slot size is a multiple of 2 MiB; on a page-aligned
// mapping every slot is then an aligned buffer (a whole number of huge pages). The
// stride is the slot size rounded up to that alignment; Slot.Buf is the usable slot size.
// The header and descriptors are native-endian: a ring is shared between processes of
// one machine.
//
// # Publication protocol
//
// head and tail count items from 0 and never wrap; item seq lives in slot seq%slots,
// and 0 <= head-tail <= slots always holds.
//
//   - The producer (Writer) reserves slot head%slots when head-tail < slots, writes the
//     payload, then the descriptor (sequence, length, CRC32C, committed flag), and then
//     publishes with a single release store of head = seq+1
//     (docs/protocol.md, "The producer: reserve, write, publish"). Killed
//     anywhere before that store, it leaves the item invisible: a resumed Writer starts
//     at head and rewrites the slot. Killed after it, the item is complete.
//   - The consumer (Reader) loads head (acquire), so it sees the whole slot and
//     descriptor; it checks the descriptor's sequence number, length and flags before
//     handing out a view. The CRC32C is checked by Verify, which the consumer runs on
//     its worker goroutines before a handler sees the data (docs/protocol.md, "The consumer:
//     acquire, verify, deliver, release"); AcquireCopy
//     verifies a private copy instead, for output that must be exactly what was checked.
//   - Items are released in any order; the Reader advances the shared tail (release
//     store) only over a contiguous run of released items, so slots return in ring order
//     and a slot is rewritten only after it was released. A takeover Reader
//     starts at tail: the at most slots unreleased items may be delivered twice, none is
//     lost.
//   - The producer ends the stream by storing the ended bit with the final count (= head)
//     in one word; the consumer, having released everything, sets drained. Format stores
//     the magic last, so a half-formatted buffer reads as not formatted (ErrNotFormatted).
//
// No property depends on the semaphores of the packages above: the indices are the
// truth, the doorbell words only tell a side whether its peer may be asleep (docs/protocol.md,
// "Doorbells").
//
// # Memory model
//
// Every shared word is a typed atomic (sync/atomic.Uint64, Uint32) laid over the buffer
// and is read and written only through it, never by a plain load or store: the other
// process is invisible to the Go compiler, which could otherwise keep a value in a
// register, tear it, or reorder it around the publication. Go's atomics are sequentially
// consistent, which gives the release store of head (and tail) and the acquire load
// that pairs with it, and also the store-then-load order the doorbell protocol of the
// producer and consumer packages needs. The payload itself is written and read with
// plain memory operations, ordered by those atomics; on heap memory the race detector
// checks exactly this, which is why the concurrent tests run on the heap.
//
// # Trust model
//
// Shared memory is untrusted input (docs/protocol.md, "Opening a ring: validation"): another process, buggy or hostile, may
// write anything at any time. Open validates the magic, version, every geometry field
// (recomputed from slot count and size, overflow-checked, against the buffer length),
// the name and the indices, and a Ring keeps private copies of the geometry, so slice
// bounds never come from shared memory after Open. Acquire validates head against its
// own tail and each descriptor before use; a Reader and a Writer keep their positions
// in private memory. Any bytes give an error, never a panic, an out-of-range slice or an
// unbounded loop (fuzzed by FuzzOpen and FuzzAcquire). Checks cannot stop a writer with
// access to the memory from changing a slot after its CRC was verified; AcquireCopy is
// the answer to that.
//
// Check verifies every invariant of the header and the descriptors and is run after
// every test step.
package ring
