// Package bridge carries a shmpc ring's stream from one host to another through
// NATS JetStream, keeping the ring's guarantees: items in order, each checked
// against the CRC32C its producer published, none lost or repeated across a
// restart of either side of the bridge.
//
// A Sender is the consumer of a local ring: it publishes every item, verified
// (a private copy, consumer.Options.Copy), to a JetStream subject, and releases
// the item in the ring only once JetStream acknowledged every message of it. A
// Receiver is a durable JetStream consumer on that subject: it reassembles the
// items and produces them into a local ring on its host, in order, with the
// source's CRC32C, and ends that ring when the source's stream ended.
//
// # Messages
//
// An item larger than a piece (the server's max_payload less room for the
// headers) travels as several messages, its pieces, in order. Every message
// carries headers (see the Header constants): the stream identity (the source
// ring's NAME and a random 64-bit key the first Sender stored in the ring, so
// a later stream of the same NAME is another stream), the item's sequence
// number, the piece's number, count and byte offset, the item's length and
// CRC32C, and the source ring's geometry. Its message id, `<stream>.<seq>.<piece>`,
// makes a republish idempotent within the stream's duplicate window: a Sender
// that restarts after a crash republishes the items its predecessor had not
// released, and JetStream drops the pieces it already stored. The end of the
// stream is one more message, with id `<stream>.end` and the item count in
// HeaderEnd.
//
// Items that fit in a piece go out as packs while an earlier message is in
// flight: one message carrying k (2 or more, at most half the ring's slots)
// whole items in order, their bytes one after another, with HeaderPack k
// and the k lengths and CRC32Cs listed in HeaderLen and HeaderCRC; its id is
// `<stream>.<seq>+<k>`. A pack waits for more items only until the oldest
// message in flight is acknowledged, so an item is never held back longer
// than one acknowledgement. For a NATS server a message costs more than its
// bytes: at 64 KiB items, packs are what keeps the bridge near raw
// JetStream publishing (BENCHMARKS.md). A successor may pack the items it
// republishes otherwise than its predecessor did, so the ids differ and both
// are stored; the Receiver drops the items its ring already holds, whatever
// messages carry them.
//
// # Guarantees
//
// A Sender releases an item only after every piece of it was stored, so a
// killed Sender loses nothing: the ring's next consumer (a new Sender) starts at
// the oldest unreleased item. It publishes the end of the stream before it
// tells the source ring's producer that the ring is drained (after which the
// producer removes the ring; consumer.Options.BeforeDrain), so no crash loses
// the end either: a Sender killed between the two leaves the ended ring to its
// successor, which publishes the end again. A Receiver acknowledges the messages of an item
// only once the item is committed in its ring, and on a restart it starts its
// durable consumer again at the first message not acknowledged and drops every
// piece of an item its ring already holds (the ring's producer.Next), so a
// killed Receiver repeats nothing either. The CRC32C travels from the source:
// the Receiver checks the reassembled item against it before CommitCRC, and a
// mismatch is ErrIntegrity (the item is not committed). Messages without
// valid headers, or of another stream, are acknowledged and counted as
// ignored, never delivered.
//
// # Stream
//
// EnsureStream creates the JetStream stream when it is missing (file storage,
// the subject, the duplicate window) and checks it when present; a stream that
// does not fit is an error matching ErrStream that says what to change.
//
// A Sender or Receiver is used by one goroutine: Run until it returns (cancel
// its context to stop it), then Close.
package bridge
