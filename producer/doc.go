// Package producer is the writing side of a shmpc ring: it moves items (blocks of
// bytes, up to the ring's slot size) to a consumer process through shared memory.
// A process opens the ring NAME, sends items, ends the stream and closes; the other
// process reads the items with package consumer (or `shmpc consume`), in either
// start order.
//
//	p, err := producer.Open(ctx, "frames", producer.Options{})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//	for _, item := range items {
//		if err := p.Send(ctx, item); err != nil {
//			return err
//		}
//	}
//	return p.End(ctx) // waits until the consumer has every item, then removes the ring
//
// # Open, send, end, close
//
// Open creates the ring (8 slots of 8 MiB unless Options say otherwise) or resumes
// one whose producer died (see Resume below), and takes the producer role: one live
// producer per NAME. Sending blocks only while every slot holds an item the consumer
// has not released yet. A consumer started later than the producer is waited for up
// to Options.Wait, when the producer needs one (the ring is full, or End waits for
// the drain).
//
// End marks the end of the stream, waits until the consumer has released every item,
// and removes every object of the ring: when End returns nil, every item was
// delivered. Close removes the ring if End did not (after an error, or to abandon a
// stream: the consumer then reports its producer lost); always defer it. Items are
// numbered from 0 in the order they were committed (Next returns the number the next
// one gets).
//
// # Ways to send
//
// Each item carries a CRC32C that the consumer checks before it hands the item to
// anyone. The four ways to send differ in where the bytes come from and in how the
// checksum is taken. The figures are from BENCHMARKS.md in the repository, section
// 2b (8 MiB items, 8 slots, huge pages, a consumer that looks at each item in place),
// on the machine of BENCHMARKS.md (2 CPUs, AMD Zen 3, CRC32C kernel avx2), as a
// fraction of memcpy there: one core copying one 8 MiB buffer into eight 8 MiB
// buffers in turn, 16.5 GiB/s. They are medians of three runs of whole
// producer-consumer pairs on a shared VM, where such figures move by up to a quarter
// between sessions: read them as a ranking, not to the digit.
//
//   - Send(ctx, data): the item is already in a buffer of its own. Send copies it into
//     a slot and checksums it in the same pass over memory (a fused copy-and-CRC32C
//     where the CPU has AVX2 and VPCLMULQDQ). 9.3 GiB/s, 0.55x memcpy: about as fast
//     as data generated straight into the slot. Use it unless the data can be
//     produced in the slot itself.
//   - Reserve, write the item into Slot.Buf in pieces, ring.UpdateCRC of each piece
//     right after writing it, CommitCRC(n, crc): the data is generated, decoded or
//     read straight into the slot (zero copy), and each piece is checksummed while
//     it is still in the cache, so the slot is never read back. `shmpc run` works
//     this way, generating each item in the slot with a kernel that checksums what
//     it writes: 9.1 GiB/s, 0.55x memcpy. An item assembled from pieces that exist
//     elsewhere (a header, then a body) is copied in with ring.CopyUpdateCRC, which
//     copies and checksums each piece in one pass with the running checksum: 64 KiB
//     pieces so measured 9.7 GiB/s against 9.1 for the payload path in the same runs
//     (BENCHMARKS.md 2c), where copy then UpdateCRC of each piece measured 5.2. See
//     the example of CommitCRC.
//   - Reserve, write into Slot.Buf, Commit(n): the simplest zero-copy path. Commit
//     checksums the slot by reading it back from memory, a second pass: 5.3 GiB/s,
//     0.32x memcpy, the slowest for large items. It also checksums whatever the slot
//     holds at that moment: a process that can write the segment and changes the slot
//     between the write and the Commit goes unnoticed, whereas a checksum taken from
//     the data itself (Send, CommitCRC) lets the consumer catch it.
//   - Writer(ctx): the stream is a byte stream (io.Copy, an encoder, fmt.Fprintf).
//     Write copies into slots as Send does and commits each full slot, so items are
//     slot-sized but for the last; ReadFrom (what io.Copy uses) reads in cache-sized
//     pieces and copies each on with the fused kernel; an item is what the reader
//     had ready (whole slots from a file, what a pipe held).
//     Close ends the stream.
//
// None of these allocates or makes a system call per item while neither side
// sleeps (a Writer's reader may, for its own reads).
//
// # Errors
//
// Errors are one line, wrapped with what was being done; match them with
// errors.Is:
//
//   - ErrPeerLost: the consumer died or left and no new one came within
//     Options.PeerTimeout, or no first consumer came within Options.Wait, or a live
//     consumer released nothing for Options.StallTimeout. The error is a
//     *PeerLostError: errors.As finds it to read how many items were delivered and
//     how many are lost. The ring stays until Close, so a process may also wait
//     longer and try again.
//   - ErrBusy: another live process is this ring's producer (Open), or Options.Fresh
//     was asked while a consumer is attached.
//   - ErrForeign: the NAME's objects belong to another user or are not a usable ring;
//     `shmpc gc` removes leftovers of rings whose owners are all dead.
//   - ErrExists, ErrGeometry: an existing ring cannot be resumed as asked (see Resume).
//   - ErrEnded: the stream ended; Reserve takes no more items.
//   - ErrClosed (which also matches os.ErrClosed): a call after Close or after End
//     removed the ring, or a call that Close, from another goroutine, ended while it
//     waited.
//   - A context's error, wrapped: every call that may wait takes a context and returns
//     its error once it ends, before any work when it had ended already. A cancelled
//     Reserve or Send sends nothing.
//
// # Resume
//
// A producer that dies leaves the ring and its items in place. Open on the same NAME
// then resumes it: the consumer, alive or restarted, gets every committed item, and
// the new producer's first item is number Next(). A producer that can regenerate its
// stream from an item number continues from there; Options.StreamItems and
// StreamBytes record the stream's totals in the ring so that a successor knows where
// to stop, and Options.CheckStream refuses a resume with other totals. Options.Fresh
// discards the old ring instead; Options.NoResume refuses to resume (ErrExists), for
// a stream that cannot know what its predecessor sent, such as one read from a pipe.
// A resumed ring whose stream had ended already (its producer died inside End) takes
// no more items: Ended reports it, and End finishes the stream.
//
// # Delivery guarantee
//
// Without crashes every committed item is delivered exactly once; its sequence
// number is its place in the order of the commits. Across a consumer crash delivery
// is at least once: the items the dead consumer had acquired but not released (at
// most the slot count) are delivered again to the next consumer; sequence numbers,
// dense from 0, let a handler drop repeats. Across a producer crash nothing
// half-written is delivered: an item becomes visible whole at its commit, or not at
// all.
//
// # Concurrency
//
// A Producer is not safe for concurrent use: one goroutine reserves, writes and
// commits (a Writer belongs to that goroutine too). The exception is Close, which may
// be called from another goroutine to stop a call that waits: the waiting call returns
// ErrClosed and Close removes the ring once it has. Close waits for calls in progress,
// including a Writer's Read of its reader, so that it never unmaps a slot someone is
// writing; to stop a producer that is writing into a slot it reserved itself, cancel
// the context of its calls and let it call End or Close.
//
// # How it works
//
// A ring is a System V shared-memory segment holding a header, one descriptor per slot
// and the slots; four POSIX named semaphores (`filled`, `empty`, `ready`, `shutdown`)
// serve as doorbells; a lock file in /dev/shm holds one OFD lock per role, which the
// kernel drops when its holder dies. The layout, the protocol, the object names and
// the failure rules are in docs/protocol.md in the repository.
//
// An item is published by one release store of the head index after its bytes, length
// and CRC32C are in place. The indices in the segment are the truth; the semaphores
// only wake a side that sleeps, and a commit posts the consumer's semaphore only when
// the consumer flagged itself asleep, so Reserve and Commit make no system call while
// neither side sleeps.
//
// A producer that finds the ring full spins for Options.Spin, then sleeps on its
// semaphore (a futex wait). While the consumer is known to be there, the sleep is
// armed rather than watched: a monitor goroutine (started at the first such sleep,
// ended by Close) watches the consumer's role lock and its pidfd, and posts the
// producer's own semaphore if the consumer goes (and once a second, in case a wake-up
// was lost to a scribbled doorbell word), so a sleep costs a futex wait and no timer
// or goroutine of its own. Waits whose outcome depends on a deadline (no consumer yet,
// a consumer that left, a stall timeout) take a slower path that re-judges the
// consumer's presence at each wake-up.
package producer
