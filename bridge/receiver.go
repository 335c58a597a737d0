package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
)

// DefaultAckWait is the acknowledgement wait of the durable consumer a
// Receiver creates: how long a message it holds (while the local ring is full)
// stays with it before JetStream delivers it again (a copy it then drops).
const DefaultAckWait = 5 * time.Minute

// maxHeld bounds the messages a Receiver holds ahead of the piece it needs.
const maxHeld = 4096

// stallAfter is how long a Receiver goes without progress, while JetStream
// counts messages as out to it that it does not hold, before it starts its
// durable consumer again at the first message not acknowledged. Messages a
// NATS server had written to the Receiver's connection when it died, and the
// Receiver never read, count as delivered in the consumer's state the
// restarted server recovers: without a restart they would come again only
// after the ack wait (DefaultAckWait). A restart costs copies of messages
// already handled, which the Receiver drops.
const stallAfter = 3 * time.Second

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Subject is the JetStream subject the Sender publishes to (required).
	Subject string
	// Stream is the JetStream stream's name (StreamName(Subject) when empty).
	Stream string
	// Durable is the name of the durable JetStream consumer, which keeps
	// the Receiver's place in the stream (DurableName(ring) when empty).
	Durable string
	// Duplicates is the stream's duplicate window (see EnsureStream).
	Duplicates time.Duration
	// Producer configures the producer of the local ring. Slots and
	// SlotSize 0 take the source ring's geometry (carried in the messages);
	// StreamItems 0 takes the source's.
	Producer producer.Options
}

// ReceiverStats are what a Receiver committed.
type ReceiverStats struct {
	Items   uint64 // items committed into the local ring by this Receiver
	Bytes   uint64
	Dropped uint64 // messages of items the ring already held (a predecessor's, or delivered twice)
	Ignored uint64 // messages without valid bridge headers, or of another stream
	// Restarts counts the times the durable consumer was started again
	// because messages it counted as delivered never came (see Run).
	Restarts uint64
}

// Receiver is a durable JetStream consumer that produces the items of a
// Sender's stream into a local ring. NewReceiver returns one; Run carries the
// stream to its end; Close gives up the local ring. A Receiver is used by one
// goroutine.
type Receiver struct {
	name  string
	popt  producer.Options
	st    jetstream.Stream
	cfg   jetstream.ConsumerConfig // of the durable consumer, for a restart
	floor uint64                   // the ack floor of the last consumer deleted for a restart
	cons  jetstream.Consumer
	p     *producer.Producer
	key   uint64 // the accepted stream's key (0: none yet)
	next  uint64 // the next item to commit
	items uint64 // the stream's item count, when known

	// the item being assembled
	slot  ring.Slot
	cur   piece
	have  int // pieces copied
	off   int
	crc   uint32
	acks  []jetstream.Msg             // messages to acknowledge once the item is committed
	held  map[[2]uint64]jetstream.Msg // pieces ahead of the one needed, by (seq, index+1; 0 for the end)
	packs map[uint64]heldPack         // packs ahead of the item needed, by their first seq
	later []jetstream.Msg             // copies of held messages, acknowledged at the end

	stats ReceiverStats
}

// heldPack is a pack held until its first item is the one needed.
type heldPack struct {
	m  jetstream.Msg
	pc piece
}

// DurableName is the durable consumer's name for ring name when none is
// given: "shmpc-bridge-" and the NAME with '.' replaced by '_'.
func DurableName(name string) string {
	b := []byte("shmpc-bridge-" + name)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// NewReceiver checks (or creates) the JetStream stream on nc and (re)creates
// the durable consumer at the first message it has not acknowledged. The local
// ring is opened (created or resumed) at the first message. The connection
// stays the caller's.
func NewReceiver(ctx context.Context, nc *nats.Conn, name string, opt ReceiverOptions) (*Receiver, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bridge recv: %w", err)
	}
	st, err := EnsureStream(ctx, js, opt.Stream, opt.Subject, opt.Duplicates)
	if err != nil {
		return nil, fmt.Errorf("bridge recv: %w", err)
	}
	durable := opt.Durable
	if durable == "" {
		durable = DurableName(name)
	}
	cfg := jetstream.ConsumerConfig{
		Durable: durable, FilterSubject: opt.Subject, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: DefaultAckWait, MaxAckPending: 20000, DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	r := &Receiver{name: name, popt: opt.Producer, st: st, cfg: cfg, held: map[[2]uint64]jetstream.Msg{}, packs: map[uint64]heldPack{}}
	if err := r.startConsumer(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// startConsumer creates the durable consumer, or starts it again: one that
// exists holds messages a dead Receiver had (or that a dead server had
// written to this one and it never read) and would deliver them again only
// after the ack wait, so it is created anew at the first message not
// acknowledged, in stream order.
func (r *Receiver) startConsumer(ctx context.Context) error {
	cfg := r.cfg
	old, err := r.st.Consumer(ctx, cfg.Durable)
	switch {
	case err == nil:
		r.floor = old.CachedInfo().AckFloor.Stream
		if err := r.st.DeleteConsumer(ctx, cfg.Durable); err != nil {
			return fmt.Errorf("bridge recv: restart consumer %s: %w", cfg.Durable, err)
		}
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("bridge recv: consumer %s: %w", cfg.Durable, err)
	}
	// A floor known from a consumer deleted by an earlier try whose
	// creation then failed counts too: not from the stream's start again.
	if r.floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.floor+1
	}
	cons, err := r.st.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bridge recv: create consumer %s: %w", cfg.Durable, err)
	}
	r.cons = cons
	return nil
}

// lostInFlight reports whether JetStream counts more messages as out to
// the Receiver, unacknowledged, than it holds.
func (r *Receiver) lostInFlight(ctx context.Context) bool {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := r.cons.Info(ictx)
	if err != nil {
		return false // the server is away: nothing to judge by yet
	}
	return info.NumAckPending > len(r.acks)+len(r.held)+len(r.packs)+len(r.later)
}

// Stats returns what was committed so far; call it from Run's goroutine or
// after Run.
func (r *Receiver) Stats() ReceiverStats { return r.stats }

// Run produces the stream into the local ring until the source's stream ended
// and the local ring's consumer drained it (then it returns nil and the ring
// is gone), an item fails its CRC32C (ErrIntegrity), the messages contradict
// each other (ErrProtocol), the local consumer is lost (producer.ErrPeerLost),
// or ctx ends. An error leaves the local ring in place (until Close) with
// every item committed so far.
//
// A Receiver that makes no progress for stallAfter while JetStream counts
// messages as out to it that it does not hold starts its durable consumer
// again at the first message not acknowledged (ReceiverStats.Restarts).
func (r *Receiver) Run(ctx context.Context) error {
	var it jetstream.MessagesContext
	defer func() {
		if it != nil {
			it.Stop()
		}
	}()
	lastNext, lastHave, lastProgress := r.next, r.have, time.Now()
	var lastCheck time.Time // of JetStream's count, at most once a second
	restart := false
	for {
		if restart {
			// Tried again every second until it works (the server may be
			// away): the consumer may be gone already if a try deleted it.
			if err := r.startConsumer(ctx); err != nil {
				select {
				case <-ctx.Done():
					return fmt.Errorf("bridge recv: %w", ctx.Err())
				case <-time.After(time.Second):
				}
				continue
			}
			restart = false
			r.stats.Restarts++
		}
		if it == nil {
			var err error
			if it, err = r.cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(1000, 32<<20)); err != nil {
				return fmt.Errorf("bridge recv: %w", err)
			}
		}
		nctx, cancel := context.WithTimeout(ctx, time.Second)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("bridge recv: %w", ctx.Err())
		case err == nil:
			done, err := r.handle(ctx, m)
			if err != nil {
				return err
			}
			if done {
				return r.finish(ctx)
			}
		case !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("bridge recv: %w", err)
		}
		if r.next != lastNext || r.have != lastHave {
			lastNext, lastHave, lastProgress = r.next, r.have, time.Now()
			continue
		}
		if time.Since(lastProgress) < stallAfter || time.Since(lastCheck) < time.Second {
			continue
		}
		if lastCheck = time.Now(); !r.lostInFlight(ctx) {
			continue
		}
		it.Stop()
		it = nil
		restart = true
		lastProgress = time.Now()
	}
}

// handle takes one message; done reports the end of the stream.
func (r *Receiver) handle(ctx context.Context, m jetstream.Msg) (done bool, err error) {
	pc, err := parsePiece(m.Headers(), len(m.Data()))
	if err != nil {
		r.stats.Ignored++
		return false, ack(m)
	}
	if r.p == nil {
		if err := r.open(ctx, pc); err != nil {
			return false, err
		}
		if r.p.Ended() || (r.items > 0 && r.next == r.items) {
			r.acks = append(r.acks, m)
			return true, nil
		}
	}
	if r.key == 0 {
		if !(pc.seq == r.next && (pc.end || pc.index == 0)) {
			r.stats.Ignored++ // not the start of a stream this ring can take
			return false, ack(m)
		}
		r.key = pc.key
		r.p.Ring().AppWord(AppWordStream).Store(pc.key)
	}
	if pc.key != r.key {
		r.stats.Ignored++
		return false, ack(m)
	}
	if pc.items > 0 {
		r.items = pc.items
	}
	if pc.lens != nil {
		switch {
		case pc.last() < r.next:
			r.stats.Dropped++
			return false, ack(m)
		case pc.seq <= r.next:
			if err := r.applyPack(ctx, pc, m); err != nil {
				return false, err
			}
			r.dropCommitted()
			return r.drain(ctx)
		}
		if hp, dup := r.packs[pc.seq]; dup {
			r.stats.Dropped++
			if len(hp.pc.lens) >= len(pc.lens) {
				r.later = append(r.later, m)
				return false, nil
			}
			r.later = append(r.later, hp.m) // the longer one stays
		} else if err := r.tooMany(); err != nil {
			return false, err
		}
		r.packs[pc.seq] = heldPack{m, pc}
		return r.drain(ctx)
	}
	if pc.seq < r.next || (pc.seq == r.next && !pc.end && pc.index < r.have) {
		r.stats.Dropped++
		if pc.seq < r.next {
			return false, ack(m)
		}
		r.acks = append(r.acks, m) // a copy of a piece of the item being assembled
		return false, nil
	}
	k := keyOf(pc)
	if _, dup := r.held[k]; dup {
		r.stats.Dropped++
		r.later = append(r.later, m)
		return false, nil
	}
	if err := r.tooMany(); err != nil {
		return false, err
	}
	r.held[k] = m
	return r.drain(ctx)
}

// tooMany is the error of a Receiver that holds maxHeld messages ahead of
// the piece it needs.
func (r *Receiver) tooMany() error {
	if n := len(r.held) + len(r.packs); n >= maxHeld {
		return fmt.Errorf("%w: item %d piece %d never came (%d messages behind it): the stream lost it; start again from the source", ErrProtocol, r.next, r.have, n)
	}
	return nil
}

// drain applies the held messages that carry what is needed next, as far
// as they go; done reports the end of the stream.
func (r *Receiver) drain(ctx context.Context) (done bool, err error) {
	for {
		if r.items > 0 && r.next == r.items && r.have == 0 {
			return true, nil
		}
		if r.have == 0 {
			if m, ok := r.held[[2]uint64{r.next, 0}]; ok { // the end
				delete(r.held, [2]uint64{r.next, 0})
				r.acks = append(r.acks, m)
				return true, nil
			}
		}
		k := [2]uint64{r.next, uint64(r.have) + 1}
		if m, ok := r.held[k]; ok {
			delete(r.held, k)
			pc, _ := parsePiece(m.Headers(), len(m.Data()))
			if err := r.apply(ctx, pc, m); err != nil {
				return false, err
			}
			continue
		}
		hp, ok := r.packAt()
		if !ok {
			return false, nil
		}
		if err := r.applyPack(ctx, hp.pc, hp.m); err != nil {
			return false, err
		}
		r.dropCommitted()
	}
}

// dropCommitted acknowledges and forgets the held pieces of items a pack
// committed (pieces of a Sender with other sizes, come early).
func (r *Receiver) dropCommitted() {
	for k, m := range r.held {
		if k[0] < r.next && k[1] > 0 {
			delete(r.held, k)
			r.stats.Dropped++
			_ = ack(m)
		}
	}
}

// packAt takes from the held packs one that carries the item needed, if
// any; packs that carry only items already committed are dropped.
func (r *Receiver) packAt() (heldPack, bool) {
	for seq, hp := range r.packs {
		if hp.pc.last() < r.next {
			delete(r.packs, seq)
			r.stats.Dropped++
			_ = ack(hp.m) // every item of it is committed
			continue
		}
		if seq <= r.next {
			delete(r.packs, seq)
			return hp, true
		}
	}
	return heldPack{}, false
}

// keyOf is a piece's key in held.
func keyOf(pc piece) [2]uint64 {
	if pc.end {
		return [2]uint64{pc.seq, 0}
	}
	return [2]uint64{pc.seq, uint64(pc.index) + 1}
}

// open creates or resumes the local ring with the geometry of the options or
// else the source's (from pc).
func (r *Receiver) open(ctx context.Context, pc piece) error {
	o := r.popt
	if o.Slots == 0 && o.SlotSize == 0 && pc.slotSz > 0 {
		o.Slots, o.SlotSize = pc.slots, pc.slotSz
	}
	if o.StreamItems == 0 {
		o.StreamItems = pc.items
	}
	p, err := producer.Open(ctx, r.name, o)
	if err != nil {
		return fmt.Errorf("bridge recv: %w", err)
	}
	r.p = p
	r.next = p.Next()
	r.key = p.Ring().AppWord(AppWordStream).Load()
	r.items = p.Ring().StreamItems()
	return nil
}

// apply copies the next piece of the item being assembled into its slot, and
// commits the item after its last piece.
func (r *Receiver) apply(ctx context.Context, pc piece, m jetstream.Msg) error {
	data := m.Data()
	if r.have == 0 {
		if pc.length > r.p.Ring().SlotSize() {
			return fmt.Errorf("bridge recv: item %d is %d bytes, the ring's slots %d: recv with a larger -slot-size on a new ring", pc.seq, pc.length, r.p.Ring().SlotSize())
		}
		slot, err := r.p.Reserve(ctx)
		if err != nil {
			return fmt.Errorf("bridge recv: item %d: %w", pc.seq, err)
		}
		r.slot, r.cur, r.off, r.crc = slot, pc, 0, 0
	} else if pc.length != r.cur.length || pc.crc != r.cur.crc || pc.count != r.cur.count {
		return fmt.Errorf("%w: item %d piece %d says %d bytes, crc32c %d in %d pieces, piece 0 said %d, %d, %d", ErrIntegrity, pc.seq, pc.index, pc.length, pc.crc, pc.count, r.cur.length, r.cur.crc, r.cur.count)
	}
	if pc.offset != r.off {
		return fmt.Errorf("%w: item %d piece %d at offset %d, expected %d", ErrIntegrity, pc.seq, pc.index, pc.offset, r.off)
	}
	r.crc = ring.CopyUpdateCRC(r.crc, r.slot.Buf[r.off:r.off+len(data)], data)
	r.off += len(data)
	r.have++
	r.acks = append(r.acks, m)
	if r.have < r.cur.count {
		return nil
	}
	if r.off != r.cur.length || r.crc != r.cur.crc {
		return fmt.Errorf("%w: item %d reassembled (%d bytes of %d) has crc32c %#08x, the source's is %#08x: not delivered", ErrIntegrity, pc.seq, r.off, r.cur.length, r.crc, r.cur.crc)
	}
	if err := r.p.CommitCRC(r.off, r.crc); err != nil {
		return fmt.Errorf("bridge recv: commit item %d: %w", pc.seq, err)
	}
	r.stats.Items++
	r.stats.Bytes += uint64(r.off)
	r.next++
	r.have = 0
	return r.ackAll()
}

// applyPack commits the items of pack pc (message m) from the one needed
// on; its first items, committed before, are skipped. A pack carries every
// item whole: an item being assembled from pieces (a predecessor's, with
// other piece sizes) is assembled from the pack instead, in the slot
// reserved for it.
func (r *Receiver) applyPack(ctx context.Context, pc piece, m jetstream.Msg) error {
	data := m.Data()
	off := 0
	for i := range int(r.next - pc.seq) {
		off += pc.lens[i]
	}
	for i := int(r.next - pc.seq); i < len(pc.lens); i++ {
		n, seq := pc.lens[i], pc.seq+uint64(i)
		if n > r.p.Ring().SlotSize() {
			return fmt.Errorf("bridge recv: item %d is %d bytes, the ring's slots %d: recv with a larger -slot-size on a new ring", seq, n, r.p.Ring().SlotSize())
		}
		if r.have == 0 {
			slot, err := r.p.Reserve(ctx)
			if err != nil {
				return fmt.Errorf("bridge recv: item %d: %w", seq, err)
			}
			r.slot = slot
		}
		r.have, r.off = 0, 0
		crc := ring.CopyUpdateCRC(0, r.slot.Buf[:n], data[off:off+n])
		if crc != pc.crcs[i] {
			return fmt.Errorf("%w: item %d (%d bytes, item %d of a pack from %d) has crc32c %#08x, the source's is %#08x: not delivered", ErrIntegrity, seq, n, i, pc.seq, crc, pc.crcs[i])
		}
		if err := r.p.CommitCRC(n, crc); err != nil {
			return fmt.Errorf("bridge recv: commit item %d: %w", seq, err)
		}
		r.stats.Items++
		r.stats.Bytes += uint64(n)
		r.next++
		off += n
	}
	r.acks = append(r.acks, m)
	return r.ackAll()
}

// ackAll acknowledges the messages of the items committed.
func (r *Receiver) ackAll() error {
	var errs []error
	for _, m := range r.acks {
		errs = append(errs, ack(m))
	}
	r.acks = r.acks[:0]
	return errors.Join(errs...)
}

// ack acknowledges m. Its error is not one: a lost acknowledgement only
// costs a copy of m after a restart, which is dropped then.
func ack(m jetstream.Msg) error {
	_ = m.Ack()
	return nil
}

// finish ends the local ring's stream, waits for its consumer to drain it
// (the ring is then removed) and acknowledges the rest.
func (r *Receiver) finish(ctx context.Context) error {
	if err := r.p.End(ctx); err != nil {
		return fmt.Errorf("bridge recv: end the ring: %w", err)
	}
	r.acks = append(r.acks, r.later...)
	for _, m := range r.held {
		r.acks = append(r.acks, m)
	}
	for _, hp := range r.packs {
		r.acks = append(r.acks, hp.m)
	}
	return r.ackAll()
}

// Close gives up the local ring: unless Run ended it, the ring is removed
// and its consumer finds its producer gone. To leave the ring to a successor
// Receiver, exit without Close (as a crash would).
func (r *Receiver) Close() error {
	if r.p == nil {
		return nil
	}
	return r.p.Close()
}
