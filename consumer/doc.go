// Package consumer is the reading side of a shmpc ring: it attaches to the
// ring NAME that a producer (package producer, or `shmpc produce`) writes,
// and hands out its items — blocks of bytes with dense sequence numbers
// from 0 — each verified against the CRC32C the producer published with it.
//
// # Reading a ring
//
// Open attaches, waiting up to Options.Wait for the producer to create the
// ring. Then read it one of three ways, each to the end of the stream:
//
//   - Run(ctx, handler), push: the handler is called for every item, on up
//     to Options.Workers goroutines at once, and the item is released when
//     it returns nil. Run returns nil once the stream ended and every item
//     was handled.
//   - Next(ctx) and Item.Release, pull, for a caller that owns its loop:
//     Next returns the next item in sequence order, io.EOF at the end;
//     the caller releases each item when done with it (any order, any
//     goroutine).
//   - Reader(ctx), bytes: an io.Reader and io.WriterTo over the items'
//     data in order, for io.Copy into a file, a socket or a hash.
//
// Close detaches (and stops a Run in progress). A consumer that reaches the
// end of the stream tells the producer, which then removes the ring.
//
//	c, err := consumer.Open(ctx, "frames", consumer.Options{})
//	if err != nil { ... }
//	defer c.Close()
//	err = c.Run(ctx, func(seq uint64, data []byte) error {
//		return process(seq, data) // data is valid until the handler returns
//	})
//
// # Order and concurrency
//
// Choose with Options.Ordered:
//
//   - Ordered false (the default): handlers run in parallel, up to Workers
//     at once, and complete in any order. A consumer that keeps up with
//     its producer handles items on Run's goroutine alone (waking a helper
//     goroutine costs more than a quick handler); helpers join once items
//     wait and handlers take 50 µs or more. Do not rely on the order you
//     see in a quick test: under load it changes.
//   - Ordered true: the handler is called for one item at a time, in
//     sequence order, on Run's goroutine. Verification is not serialized
//     with it: the items behind the one being handled are checked by up
//     to Workers-1 helper goroutines meanwhile. Next and Reader work this
//     way too.
//
// # Zero copy or a private copy
//
// By default a handler (or Next's Item) sees the item in the shared slot:
// no copy at all, and the checksum is computed over the slot. Another
// process that can write the segment could change the bytes after they
// were verified. Options.Copy instead copies each item into a private
// buffer (one per worker or per item held) in the same pass that checksums
// it, and hands out that copy: exactly the bytes verified. The copy costs
// about one memory copy per item.
//
// # Errors
//
// Match them with errors.Is: ErrNoRing (no producer came within Wait),
// ErrBusy (another consumer holds the ring), ErrForeign (the NAME's objects
// are not a usable ring of ours), ErrIntegrity (an item failed
// verification: it is never delivered, and reading stops there),
// ErrPeerLost (the producer died and none came back within
// Options.PeerTimeout; errors.As finds a *PeerLostError with how many
// items were delivered and lost), ErrClosed, and the context's error,
// wrapped, when ctx ends (a graceful stop: the items in flight are
// finished first). A handler's error stops Run and is returned wrapped.
//
// # Delivery guarantee
//
// Without crashes every item is delivered exactly once. Across a consumer
// crash, delivery is at least once: a new consumer starts at the oldest
// unreleased item, so the items the dead one had acquired but not released
// (at most the ring's slot count) are delivered again. Handlers that must
// not see an item twice deduplicate by sequence number. If the producer
// dies, the items it published are still delivered; Options.PeerTimeout
// says how long to wait for a new producer to resume the stream.
//
// # How it works
//
// The ring's layout and protocol are described in docs/protocol.md in the
// repository. Items are verified with the project's CRC32C
// (internal/crc32c: a VPCLMULQDQ folding kernel where the CPU has one,
// hash/crc32 otherwise); a mismatch is checked again by the ring before it
// counts as an integrity error. A consumer that finds the ring empty spins
// for Options.Spin, then sleeps on its semaphore with its doorbell word
// armed: a monitor goroutine (started by Run or the first Next, ended by
// Run's return or Close) watches the producer's role lock and its pidfd
// and posts the consumer's own semaphore when the producer goes (and once
// a second, in case a wake-up was lost to a scribbled doorbell word), so a
// sleep needs no timer or goroutine of its own.
package consumer
