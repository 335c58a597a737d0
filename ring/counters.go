package ring

import "sync/atomic"

// Counters are a ring's live counters, kept in its header by both sides without a
// system call and readable by any process that maps the ring (`shmpc ls`). Each word
// is written by one side only, on a cache line that side writes anyway.
//
// They are as untrusted as the rest of the shared memory: anyone who can write the
// segment can set them to anything, and nothing in ring or its users acts on them, so
// a scribbled counter shows a wrong number and does nothing else. They survive a
// takeover of either side and start from zero when Format runs. Rates are differences
// of two readings; a counter that went back (scribbled, or a new ring of the same
// NAME) has no rate.
type Counters struct {
	// ItemsCommitted is the number of items published, which is head: one commit,
	// one item, whichever producer made it.
	ItemsCommitted uint64
	// BytesCommitted is the sum of the committed items' lengths. A producer killed in
	// the middle of a commit may have counted the bytes of an item it did not
	// publish, which its successor then counts again.
	BytesCommitted uint64
	// ItemsReleased and BytesReleased count the items the consumers released and
	// their bytes (Stats.Items and Stats.Bytes); an item delivered again after a
	// consumer takeover counts again.
	ItemsReleased uint64
	BytesReleased uint64
	// IntegrityErrors counts the CRC mismatches found by Verify and AcquireCopy.
	IntegrityErrors uint64
	// ProducerSleeps counts the producer's waits on its semaphore for a free slot:
	// one per bounded futex wait after it raised its doorbell (a post left over from
	// an earlier wake-up ends one at once).
	ProducerSleeps uint64
	// ProducerWakes counts the posts the producer made to wake a sleeping consumer.
	ProducerWakes uint64
	// ProducerPeerLosses counts the consumers the producer found gone (died or left
	// without draining the stream), whether a successor came in time or not.
	ProducerPeerLosses uint64
	// ConsumerSleeps, ConsumerWakes and ConsumerPeerLosses are the same for the
	// consumer: its waits for an item, its posts that woke the producer, the
	// producers it found gone.
	ConsumerSleeps     uint64
	ConsumerWakes      uint64
	ConsumerPeerLosses uint64
}

// Counters reads the live counters, each word atomically (the words not as one: on a
// live ring they are taken a few nanoseconds apart). It never fails and does not
// allocate.
func (r *Ring) Counters() Counters {
	h := r.h
	return Counters{
		ItemsCommitted:     h.head.Load(),
		BytesCommitted:     h.committedBytes.Load(),
		ItemsReleased:      h.items.Load(),
		BytesReleased:      h.bytes.Load(),
		IntegrityErrors:    h.integrity.Load(),
		ProducerSleeps:     h.producerSleeps.Load(),
		ProducerWakes:      h.producerWakes.Load(),
		ProducerPeerLosses: h.producerLosses.Load(),
		ConsumerSleeps:     h.consumerSleeps.Load(),
		ConsumerWakes:      h.consumerWakes.Load(),
		ConsumerPeerLosses: h.consumerLosses.Load(),
	}
}

// ProducerSleeps returns the producer's sleep counter word (Counters.ProducerSleeps),
// on head's cache line. ring never writes it: the process holding the producer role
// adds one for each wait on its semaphore (internal/ringobj's Bell does, given the
// word). Nobody else may write it.
func (r *Ring) ProducerSleeps() *atomic.Uint64 { return &r.h.producerSleeps }

// ProducerWakes returns the producer's wake-up counter word (Counters.ProducerWakes),
// on head's cache line: the producer adds one for each post that wakes the consumer.
// Nobody else may write it.
func (r *Ring) ProducerWakes() *atomic.Uint64 { return &r.h.producerWakes }

// ConsumerSleeps is ProducerSleeps for the consumer, on tail's cache line.
func (r *Ring) ConsumerSleeps() *atomic.Uint64 { return &r.h.consumerSleeps }

// ConsumerWakes is ProducerWakes for the consumer (posts that wake the producer), on
// tail's cache line.
func (r *Ring) ConsumerWakes() *atomic.Uint64 { return &r.h.consumerWakes }

// ProducerLostConsumer counts, in Counters.ProducerPeerLosses, that the producer found
// its consumer gone. Only the producer may call it. A loss is counted once per
// consumer claim (ConsumerID().Gen), remembered in the header next to the count: the
// producer may call it at every look that finds the consumer gone, and a producer that
// resumes the ring does not count again a consumer its predecessor counted.
func (r *Ring) ProducerLostConsumer() {
	countLoss(&r.h.consumer, &r.h.producerLostGen, &r.h.producerLosses)
}

// ConsumerLostProducer is ProducerLostConsumer for the consumer, which found its
// producer gone: one count per producer claim (ProducerID().Gen).
func (r *Ring) ConsumerLostProducer() {
	countLoss(&r.h.producer, &r.h.consumerLostGen, &r.h.consumerLosses)
}

// countLoss adds one to losses unless the peer's claim generation is the one last
// counted (last holds it plus one, 0 before the first loss). The words are shared and
// untrusted: a scribbled one miscounts, no more.
func countLoss(peer *identityWords, last, losses *atomic.Uint64) {
	mark := peer.load().Gen + 1
	old := last.Load()
	if old == mark || !last.CompareAndSwap(old, mark) {
		return // counted already (by this call's twin, if the CAS lost)
	}
	losses.Add(1)
}
