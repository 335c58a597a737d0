// Package internalhook holds hooks that the project's own commands and
// tests set to stop a process at a chosen point of the protocol (fault
// injection for the crash tests). Library users cannot reach it; unset,
// each costs one load of a nil function.
package internalhook

// ProducerDrained, if set, is called by producer.End after the consumer
// drained the stream and before the producer removes the ring, with the
// ring's name. It is set before any producer is opened and never changed.
var ProducerDrained func(ring string)

// ProducerEnded, if set, is called by producer.End after it marked the end
// of the stream and rang the consumer, before it waits for the drain.
var ProducerEnded func(ring string)

// BetweenPeerLooks, if set, is called by a producer or consumer that judges
// whether its peer is there, between its look at the peer's claim
// generation in the ring header and its look at the peer's lock: the
// window in which a peer that attaches must not be taken for one that
// left.
var BetweenPeerLooks func()

// LockFileOpened, if set, is called with the path each time a ring's lock
// file is opened (lockfile.Open, so Claim and gc too), after the open and
// before any lock is taken on it: the window in which the file can be
// removed and replaced behind the opener's back.
var LockFileOpened func(path string)

// ProducerAttached, if set, is called by producer.Open with the ring's
// name once the ring exists and is formatted (a consumer can attach from
// then on), before Open reads the consumer's claim generation: the window
// in which a consumer that attaches and leaves must still count as one
// that came.
var ProducerAttached func(ring string)
