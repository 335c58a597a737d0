package ring

import (
	"runtime"
)

// Identity names the process that holds a role, for messages and `shmpc ls`. It is
// not the authority on liveness (the role lock is).
type Identity struct {
	PID   uint32
	Start uint64 // process start time (e.g. clock ticks since boot), against pid reuse
	Gen   uint64 // claim generation, chosen by the caller
}

// identityReadTries bounds the retries of an identity read that overlaps a write.
const identityReadTries = 64

// store writes id under the sequence lock: seq odd, the fields, seq even.
func (w *identityWords) store(id Identity) {
	s := w.seq.Load()
	s += 1 + s&1 // next odd value, also after a writer that died mid-write
	w.seq.Store(s)
	w.pid.Store(id.PID)
	w.start.Store(id.Start)
	w.gen.Store(id.Gen)
	w.seq.Store(s + 1)
}

// load reads a consistent Identity, or the zero Identity when every try overlapped a
// write (a writer that died mid-write leaves seq odd for good).
func (w *identityWords) load() Identity {
	for range identityReadTries {
		s := w.seq.Load()
		if s&1 == 0 {
			id := Identity{PID: w.pid.Load(), Start: w.start.Load(), Gen: w.gen.Load()}
			if w.seq.Load() == s {
				return id
			}
		}
		runtime.Gosched()
	}
	return Identity{}
}

// ProducerID returns the producer's Identity. The three fields are written under a
// sequence lock, so a torn read is detected and retried: the result is a value some
// SetProducerID stored, or the zero Identity ("unknown") if a write was still in
// progress after a bounded number of retries (its writer died mid-write, say).
func (r *Ring) ProducerID() Identity { return r.h.producer.load() }

// SetProducerID records the producer's Identity. Only the process holding the producer
// role may call it (two concurrent writers could mix their fields).
func (r *Ring) SetProducerID(id Identity) { r.h.producer.store(id) }

// ConsumerID is ProducerID for the consumer.
func (r *Ring) ConsumerID() Identity { return r.h.consumer.load() }

// SetConsumerID is SetProducerID for the consumer.
func (r *Ring) SetConsumerID(id Identity) { r.h.consumer.store(id) }
