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
	ended   bool // the end message was published
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

// inflight is an item whose pieces are published and not all acknowledged.
type inflight struct {
	it   consumer.Item
	msgs []*nats.Msg
	futs []jetstream.PubAckFuture
	done int // pieces acknowledged, in order
}

// Run publishes the ring's items until its stream ended (then it publishes the
// end and returns nil), the ring's producer is lost (consumer.ErrPeerLost),
// an item fails verification (ErrIntegrity), JetStream refuses a piece for
// longer than SenderOptions.Retry, or ctx ends. When ctx ends it waits
// (up to SenderOptions.Retry) for the pieces already published, releases
// the items acknowledged and returns ctx's error, wrapped: the ring's next
// consumer carries on.
func (s *Sender) Run(ctx context.Context) error {
	window := s.r.Slots() // never hold every slot while waiting for the next item
	var q []*inflight
	finish := func(ctx context.Context) error {
		for len(q) > 0 {
			if err := s.complete(ctx, q[0], true); err != nil {
				return err
			}
			q = q[1:]
		}
		return nil
	}
	for {
		it, err := s.c.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.retry)
				ferr := finish(fctx)
				cancel()
				return errors.Join(fmt.Errorf("bridge send: %w", err), ferr)
			}
			return fmt.Errorf("bridge send: %w", err)
		}
		f, err := s.publish(ctx, it)
		if err != nil {
			return err
		}
		q = append(q, f)
		for len(q) > 0 {
			// Wait for the oldest item's acknowledgements when the window
			// is full, or when the ring holds no newer item to publish
			// meanwhile (else the last items of a burst would stay
			// unreleased until the next item or the end came); otherwise
			// take only what has come.
			idle := s.r.Head() <= it.Seq+1
			if err := s.complete(ctx, q[0], len(q) >= window || idle); err != nil {
				return err
			}
			if q[0].done < len(q[0].futs) {
				break
			}
			q = q[1:]
		}
	}
	if err := finish(ctx); err != nil {
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

// publish publishes the pieces of it without waiting for their acknowledgements.
func (s *Sender) publish(ctx context.Context, it consumer.Item) (*inflight, error) {
	n := len(it.Data)
	count := max(1, (n+s.piece-1)/s.piece)
	crc := strconv.FormatUint(uint64(it.CRC), 10) // what the copy was verified against
	f := &inflight{it: it, msgs: make([]*nats.Msg, count), futs: make([]jetstream.PubAckFuture, count)}
	seq := strconv.FormatUint(it.Seq, 10)
	for i := range count {
		off := i * s.piece
		m := nats.NewMsg(s.subject)
		m.Data = it.Data[off:min(n, off+s.piece)]
		m.Header.Set(HeaderStream, s.id)
		m.Header.Set(HeaderSeq, seq)
		m.Header.Set(HeaderPiece, strconv.Itoa(i)+"/"+strconv.Itoa(count))
		m.Header.Set(HeaderOffset, strconv.Itoa(off))
		m.Header.Set(HeaderLen, strconv.Itoa(n))
		m.Header.Set(HeaderCRC, crc)
		m.Header.Set(HeaderSlots, strconv.Itoa(s.r.Slots()))
		m.Header.Set(HeaderSlotSize, strconv.Itoa(s.r.SlotSize()))
		if items := s.r.StreamItems(); items > 0 {
			m.Header.Set(HeaderStreamItems, strconv.FormatUint(items, 10))
		}
		f.msgs[i] = m
		fut, err := s.js.PublishMsgAsync(m, jetstream.WithMsgID(msgID(s.id, it.Seq, i)), jetstream.WithExpectStream(s.stream))
		if err != nil {
			fut = nil // published again synchronously by complete
			s.stats.Retries++
		}
		f.futs[i] = fut
	}
	return f, nil
}

// complete collects f's acknowledgements (waiting for them when wait, or
// else only as far as they came) and, once every piece is acknowledged,
// releases the item (the release of an ended stream's last item publishes
// the end first, through consumer.Options.BeforeDrain).
func (s *Sender) complete(ctx context.Context, f *inflight, wait bool) error {
	for f.done < len(f.futs) {
		fut := f.futs[f.done]
		var ack *jetstream.PubAck
		var perr error
		if fut == nil {
			perr = errors.New("not published")
		} else if wait {
			select {
			case ack = <-fut.Ok():
			case perr = <-fut.Err():
			case <-ctx.Done():
				return fmt.Errorf("bridge send: item %d: %w", f.it.Seq, ctx.Err())
			}
		} else {
			select {
			case ack = <-fut.Ok():
			case perr = <-fut.Err():
			default:
				return nil
			}
		}
		if perr != nil {
			var err error
			if ack, err = s.republish(ctx, f.msgs[f.done], msgID(s.id, f.it.Seq, f.done)); err != nil {
				return fmt.Errorf("bridge send: item %d piece %d: %w (first: %v)", f.it.Seq, f.done, err, perr)
			}
		}
		if ack.Duplicate {
			s.stats.Duplicates++
		}
		s.stats.Pieces++
		f.done++
	}
	if err := f.it.Release(); err != nil {
		return fmt.Errorf("bridge send: release item %d: %w", f.it.Seq, err)
	}
	s.stats.Items++
	s.stats.Bytes += uint64(len(f.it.Data))
	return nil
}

// republish publishes m again, synchronously, until it is acknowledged or
// the retry horizon passed.
func (s *Sender) republish(ctx context.Context, m *nats.Msg, id string) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(s.retry)
	for {
		s.stats.Retries++
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
	if _, err := s.republish(ctx, m, endID(s.id)); err != nil {
		return fmt.Errorf("bridge send: publish the end: %w", err)
	}
	s.ended = true
	return nil
}

// Close detaches from the ring: items not released (a Run that failed) go
// to the ring's next consumer. The NATS connection stays the caller's.
func (s *Sender) Close() error { return s.c.Close() }
