package bridge

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/ring"
)

// AppWordStream is the ring application word (ring.Ring.AppWord) in which the
// first Sender of a ring stores the random key of its stream identity, and a
// Receiver the key of the stream its ring holds, so that their successors
// carry on the same stream.
const AppWordStream = 7

// headroom is what a piece leaves of the server's max_payload for headers.
const headroom = 4096

// DefaultRetry is the default of SenderOptions.Retry.
const DefaultRetry = time.Minute

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Subject is the JetStream subject the items are published to (required).
	Subject string
	// Stream is the JetStream stream's name (StreamName(Subject) when empty).
	Stream string
	// Duplicates is the stream's duplicate window (DefaultDuplicates when 0);
	// see EnsureStream.
	Duplicates time.Duration
	// PieceSize is the most item bytes per message (0: the server's
	// max_payload less 4 KiB for headers).
	PieceSize int
	// Retry is how long a piece whose publication failed (no acknowledgement
	// in time, the server restarting) is published again before Run gives up
	// (DefaultRetry when 0).
	Retry time.Duration
	// Consumer configures the consumer of the local ring; Copy is always on
	// (what is published is exactly what was verified).
	Consumer consumer.Options
}

// SenderStats are what a Sender published.
type SenderStats struct {
	Items      uint64 // items published, acknowledged and released
	Bytes      uint64 // their bytes
	Pieces     uint64 // messages acknowledged
	Duplicates uint64 // of which JetStream dropped as already stored (a predecessor's)
	Retries    uint64 // publications tried again
}

// Sender is the consumer of a local ring that publishes its items to JetStream.
// NewSender returns one; Run publishes the stream; Close detaches from the
// ring. A Sender is used by one goroutine.
type Sender struct {
	c       *consumer.Consumer
	js      jetstream.JetStream
	stream  string // the JetStream stream
	subject string
	id      string // the ring stream's identity
	r       *ring.Ring
	piece   int
	retry   time.Duration
	ended   bool     // the end message was published
	bufs    [][]byte // packs' buffers, free
	stats   SenderStats
}

// NewSender checks (or creates) the JetStream stream on nc and attaches to ring
// name as its consumer (waiting opt.Consumer.Wait for it). The connection stays
// the caller's.
func NewSender(ctx context.Context, nc *nats.Conn, name string, opt SenderOptions) (_ *Sender, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bridge send: %w", err)
	}
	st, err := EnsureStream(ctx, js, opt.Stream, opt.Subject, opt.Duplicates)
	if err != nil {
		return nil, fmt.Errorf("bridge send: %w", err)
	}
	s := &Sender{js: js, stream: st.CachedInfo().Config.Name, subject: opt.Subject, piece: opt.PieceSize, retry: opt.Retry}
	if s.piece <= 0 {
		s.piece = int(nc.MaxPayload()) - headroom
	}
	if s.piece <= 0 || int64(s.piece)+headroom > nc.MaxPayload() {
		return nil, fmt.Errorf("bridge send: piece size %d does not fit the server's max_payload %d: give a smaller one", s.piece, nc.MaxPayload())
	}
	if s.retry <= 0 {
		s.retry = DefaultRetry
	}
	copt := opt.Consumer
	copt.Copy = true
	// The end goes to JetStream before the producer learns that the ring is
	// drained (and removes it): a Sender killed between the two leaves the
	// ended ring to its successor, which publishes the end again (dropped
	// by its message id), instead of losing it with the ring.
	copt.BeforeDrain = func() error {
		if s.ended {
			return nil
		}
		ectx, cancel := context.WithTimeout(context.Background(), s.retry)
		defer cancel()
		return s.publishEnd(ectx)
	}
	s.c, err = consumer.Open(ctx, name, copt)
	if err != nil {
		return nil, fmt.Errorf("bridge send: %w", err)
	}
	s.r = s.c.Ring()
	key := s.r.AppWord(AppWordStream)
	if key.Load() == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		key.CompareAndSwap(0, binary.LittleEndian.Uint64(b[:])|1)
	}
	s.id = streamID(name, key.Load())
	return s, nil
}

// StreamID returns the identity of the ring's stream in the messages
// (HeaderStream).
func (s *Sender) StreamID() string { return s.id }

// Stats returns what was published so far; call it from Run's goroutine or
// after Run.
func (s *Sender) Stats() SenderStats { return s.stats }

// pub is one published message: a piece of an item, a whole item, or a
// pack of several small ones.
type pub struct {
	m     *nats.Msg
	id    string
	fut   jetstream.PubAckFuture // nil: not published (published again synchronously)
	items []consumer.Item        // released once m is acknowledged: a pack's, an item's (its last piece's)
	buf   []byte                 // a pack's buffer, reused once m is acknowledged
	// What a watcher (nextOrAck) took from fut for complete.
	got bool
	ack *jetstream.PubAck
	err error
}

// Run publishes the ring's items until its stream ended (then it publishes the
// end and returns nil), the ring's producer is lost (consumer.ErrPeerLost),
// an item fails verification (ErrIntegrity), JetStream refuses a piece for
// longer than SenderOptions.Retry, or ctx ends. When ctx ends it waits
// (up to SenderOptions.Retry) for the messages already published, releases
// the items acknowledged and returns ctx's error, wrapped: the ring's next
// consumer carries on.
//
// The window of unacknowledged items is the ring's slots. Items that fit
// in a piece travel as packs of up to half the slots while a message is in
// flight (one message instead of several, which is what costs a NATS
// server most for small items), and alone while none is: a pack waits for
// more items only as long as the oldest message in flight is not
// acknowledged.
func (s *Sender) Run(ctx context.Context) error {
	window := s.r.Slots() // the most items held unreleased: with every slot held, only acknowledgements can come
	packMax := min(maxPack, max(1, window/2))
	var (
		q       []*pub
		pack    []consumer.Item
		packBuf []byte // the pack's bytes: the items are copied here as they are verified
		held    int    // items taken from the ring and not released
		next    uint64 // the seq after the last item taken (0 before the first)
	)
	flush := func() {
		if len(pack) > 0 {
			q = append(q, s.publishPack(pack, packBuf))
			pack, packBuf = nil, nil
		}
	}
	// collect completes the messages at the front of q, waiting for the
	// first when wait.
	collect := func(ctx context.Context, wait bool) error {
		for len(q) > 0 {
			n := len(q[0].items)
			if err := s.complete(ctx, q[0], wait); err != nil {
				return err
			}
			if !q[0].done() {
				return nil
			}
			held -= n
			q[0] = nil
			q = q[1:]
			wait = false
		}
		return nil
	}
	// drain completes every message published.
	drain := func(ctx context.Context) error {
		for len(q) > 0 {
			if err := collect(ctx, true); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		// No item after the last one taken is published. Before the first
		// it says nothing that matters: nothing is in flight or packed.
		idle := s.r.Head() <= next
		var it consumer.Item
		var err error
		switch {
		case held >= window:
			// Every slot is held: nothing more can come before a release.
			flush()
			if err := collect(ctx, true); err != nil {
				return err
			}
			continue
		case len(q) > 0 && idle:
			// Wait for an item or for the oldest acknowledgement,
			// whichever comes first; a pack goes out at the latter.
			var acked bool
			it, acked, err = s.nextOrAck(ctx, q[0], s.space(&packBuf))
			if acked {
				flush()
				if err := collect(ctx, false); err != nil {
					return err
				}
				continue
			}
		default:
			if idle && len(pack) > 0 {
				flush() // nothing in flight: a pack is not held back
				continue
			}
			it, err = s.c.NextInto(ctx, s.space(&packBuf))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				// The pack's items stay unreleased, for the next consumer.
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.retry)
				ferr := drain(fctx)
				cancel()
				return errors.Join(fmt.Errorf("bridge send: %w", err), ferr)
			}
			return fmt.Errorf("bridge send: %w", err)
		}
		next = it.Seq + 1
		held++
		switch n := len(it.Data); {
		case n <= cap(packBuf)-len(packBuf):
			// NextInto copied it into the pack's buffer.
			packBuf = packBuf[:len(packBuf)+n]
			pack = append(pack, it)
		case n <= s.piece:
			flush()
			packBuf = append(s.space(&packBuf)[:0], it.Data...)
			pack = append(pack, it)
		default:
			flush()
			ps := s.publishPieces(it.Seq, it.Data, it.CRC)
			ps[len(ps)-1].items = []consumer.Item{it}
			q = append(q, ps...)
		}
		if len(pack) >= packMax {
			flush()
		}
		if err := collect(ctx, false); err != nil {
			return err
		}
	}
	flush()
	if err := drain(ctx); err != nil {
		return err
	}
	// The end was published and the drain told in the last Release (or in
	// Next, for a stream whose items were all released before its end);
	// Next reports a drain that failed.
	if _, err := s.c.Next(ctx); err != io.EOF {
		return fmt.Errorf("bridge send: %w", err)
	}
	return nil
}

// nextOrAck waits for the ring's next item or p's acknowledgement, whichever
// comes first; acked reports the latter (then complete finds what came in p).
func (s *Sender) nextOrAck(ctx context.Context, p *pub, dst []byte) (it consumer.Item, acked bool, err error) {
	if p.got || p.fut == nil {
		return consumer.Item{}, true, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case p.ack = <-p.fut.Ok():
			p.got = true
			cancel()
		case p.err = <-p.fut.Err():
			p.got = true
			cancel()
		case <-wctx.Done():
		}
	}()
	it, err = s.c.NextInto(wctx, dst)
	cancel()
	<-done
	if err != nil && p.got && ctx.Err() == nil {
		return consumer.Item{}, true, nil
	}
	return it, false, err
}

// headers sets the headers every item message carries.
func (s *Sender) headers(m *nats.Msg, seq uint64) {
	m.Header.Set(HeaderStream, s.id)
	m.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(HeaderSlots, strconv.Itoa(s.r.Slots()))
	m.Header.Set(HeaderSlotSize, strconv.Itoa(s.r.SlotSize()))
	if items := s.r.StreamItems(); items > 0 {
		m.Header.Set(HeaderStreamItems, strconv.FormatUint(items, 10))
	}
}

// publishPieces publishes item seq, data with checksum crc (what the copy
// was verified against), as its pieces (one when it fits in one), without
// waiting for their acknowledgements; the caller sets what the last one
// releases.
func (s *Sender) publishPieces(seq uint64, data []byte, crc uint32) []*pub {
	n := len(data)
	count := max(1, (n+s.piece-1)/s.piece)
	crcs := strconv.FormatUint(uint64(crc), 10)
	ps := make([]*pub, count)
	for i := range count {
		off := i * s.piece
		m := nats.NewMsg(s.subject)
		m.Data = data[off:min(n, off+s.piece)]
		s.headers(m, seq)
		m.Header.Set(HeaderPiece, strconv.Itoa(i)+"/"+strconv.Itoa(count))
		m.Header.Set(HeaderOffset, strconv.Itoa(off))
		m.Header.Set(HeaderLen, strconv.Itoa(n))
		m.Header.Set(HeaderCRC, crcs)
		ps[i] = s.send(m, msgID(s.id, seq, i))
	}
	return ps
}

// space returns the room left in the pack's buffer *buf, giving it one
// (a free one, or a new one of a piece) when it has none.
func (s *Sender) space(buf *[]byte) []byte {
	if *buf == nil {
		if k := len(s.bufs); k > 0 {
			*buf, s.bufs = s.bufs[k-1][:0], s.bufs[:k-1]
		} else {
			*buf = make([]byte, 0, s.piece)
		}
	}
	return (*buf)[len(*buf):cap(*buf)]
}

// publishPack publishes items, whose bytes are data one after another, as
// one message: a pack, or the one item's only piece. data's buffer is
// reused once the message is acknowledged.
func (s *Sender) publishPack(items []consumer.Item, data []byte) *pub {
	if len(items) == 1 {
		p := s.publishPieces(items[0].Seq, data, items[0].CRC)[0]
		p.items, p.buf = items, data
		return p
	}
	var lens, crcs []byte
	for i, it := range items {
		if i > 0 {
			lens, crcs = append(lens, ','), append(crcs, ',')
		}
		lens = strconv.AppendInt(lens, int64(len(it.Data)), 10)
		crcs = strconv.AppendUint(crcs, uint64(it.CRC), 10)
	}
	m := nats.NewMsg(s.subject)
	m.Data = data
	s.headers(m, items[0].Seq)
	m.Header.Set(HeaderPack, strconv.Itoa(len(items)))
	m.Header.Set(HeaderLen, string(lens))
	m.Header.Set(HeaderCRC, string(crcs))
	p := s.send(m, packID(s.id, items[0].Seq, len(items)))
	p.items, p.buf = items, data
	return p
}

// send publishes m with message id id, asynchronously.
func (s *Sender) send(m *nats.Msg, id string) *pub {
	p := &pub{m: m, id: id}
	fut, err := s.js.PublishMsgAsync(m, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.stream))
	if err != nil {
		s.stats.Retries++ // published again synchronously by complete
		return p
	}
	p.fut = fut
	return p
}

// done reports whether p was acknowledged and its items released.
func (p *pub) done() bool { return p.m == nil }

// complete takes p's acknowledgement (waiting for it when wait, or else only
// if it came) and then releases p's items (the release of an ended stream's
// last item publishes the end first, through consumer.Options.BeforeDrain).
func (s *Sender) complete(ctx context.Context, p *pub, wait bool) error {
	if p.done() {
		return nil
	}
	ack, perr := p.ack, p.err
	switch {
	case p.got:
	case p.fut == nil:
		perr = errors.New("not published")
	case wait:
		select {
		case ack = <-p.fut.Ok():
		case perr = <-p.fut.Err():
		case <-ctx.Done():
			return fmt.Errorf("bridge send: message %s: %w", p.id, ctx.Err())
		}
	default:
		select {
		case ack = <-p.fut.Ok():
		case perr = <-p.fut.Err():
		default:
			return nil
		}
	}
	p.got, p.ack, p.err = true, ack, perr
	if perr != nil {
		var err error
		if ack, err = s.republish(ctx, p.m, p.id); err != nil {
			return fmt.Errorf("bridge send: message %s: %w (first: %v)", p.id, err, perr)
		}
	}
	if ack.Duplicate {
		s.stats.Duplicates++
	}
	s.stats.Pieces++
	for _, it := range p.items {
		if err := it.Release(); err != nil {
			return fmt.Errorf("bridge send: release item %d: %w", it.Seq, err)
		}
		s.stats.Items++
		s.stats.Bytes += uint64(len(it.Data))
	}
	if p.buf != nil {
		s.bufs = append(s.bufs, p.buf)
	}
	p.m, p.items, p.buf = nil, nil, nil
	return nil
}

// republish publishes m again, synchronously, until it is acknowledged or
// the retry horizon passed.
func (s *Sender) republish(ctx context.Context, m *nats.Msg, id string) (*jetstream.PubAck, error) {
	s.stats.Retries++
	return s.publishSync(ctx, m, id)
}

// publishSync publishes m synchronously, trying again (each try counted as a
// retry) until it is acknowledged or the retry horizon passed.
func (s *Sender) publishSync(ctx context.Context, m *nats.Msg, id string) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(s.retry)
	for try := 0; ; try++ {
		if try > 0 {
			s.stats.Retries++
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := s.js.PublishMsg(pctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(s.stream),
			jetstream.WithRetryAttempts(5), jetstream.WithRetryWait(200*time.Millisecond))
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// beforeEndHook, when set (by tests), runs as publishEnd starts.
var beforeEndHook func()

// publishEnd publishes the end of the stream, synchronously.
func (s *Sender) publishEnd(ctx context.Context) error {
	if beforeEndHook != nil {
		beforeEndHook()
	}
	final, _ := s.r.End()
	m := nats.NewMsg(s.subject)
	m.Header.Set(HeaderStream, s.id)
	m.Header.Set(HeaderEnd, strconv.FormatUint(final, 10))
	if _, err := s.publishSync(ctx, m, endID(s.id)); err != nil {
		return fmt.Errorf("bridge send: publish the end: %w", err)
	}
	s.ended = true
	return nil
}

// Close detaches from the ring: items not released (a Run that failed) go
// to the ring's next consumer. The NATS connection stays the caller's.
func (s *Sender) Close() error { return s.c.Close() }
