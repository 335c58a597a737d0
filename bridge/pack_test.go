package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// packItem is item seq of the crafted streams: its length varies with seq
// (so that a pack's lengths are not all one) and its bytes name it.
func packItem(seq uint64) []byte {
	n := 300 + int(seq%7)*101
	name := fmt.Sprintf("<item %d>", seq)
	return bytes.Repeat([]byte(name), n/len(name)+1)[:n]
}

// crafted builds the messages a Sender of stream id would publish.
type crafted struct {
	subject, id string
	items       int // the stream's item count, in every message
}

func (c crafted) base(seq uint64) *nats.Msg {
	m := nats.NewMsg(c.subject)
	m.Header.Set(bridge.HeaderStream, c.id)
	m.Header.Set(bridge.HeaderSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(bridge.HeaderSlots, "4")
	m.Header.Set(bridge.HeaderSlotSize, "4096")
	m.Header.Set(bridge.HeaderStreamItems, strconv.Itoa(c.items))
	return m
}

// pack is the pack of items from..to (inclusive); bad, when >= 0, gives
// that item a wrong CRC32C in the lists.
func (c crafted) pack(from, to uint64, bad int) *nats.Msg {
	m := c.base(from)
	var lens, crcs []string
	for s := from; s <= to; s++ {
		d := packItem(s)
		m.Data = append(m.Data, d...)
		crc := ring.CRC(d)
		if int(s-from) == bad {
			crc ^= 1 << 7
		}
		lens = append(lens, strconv.Itoa(len(d)))
		crcs = append(crcs, strconv.FormatUint(uint64(crc), 10))
	}
	m.Header.Set(bridge.HeaderPack, strconv.Itoa(int(to-from+1)))
	m.Header.Set(bridge.HeaderLen, strings.Join(lens, ","))
	m.Header.Set(bridge.HeaderCRC, strings.Join(crcs, ","))
	return m
}

// piece is piece i of n of item seq (pieces of ceil(len/n) bytes).
func (c crafted) piece(seq uint64, i, n int) *nats.Msg {
	d := packItem(seq)
	size := (len(d) + n - 1) / n
	m := c.base(seq)
	m.Data = d[i*size : min(len(d), (i+1)*size)]
	m.Header.Set(bridge.HeaderPiece, fmt.Sprintf("%d/%d", i, n))
	m.Header.Set(bridge.HeaderOffset, strconv.Itoa(i*size))
	m.Header.Set(bridge.HeaderLen, strconv.Itoa(len(d)))
	m.Header.Set(bridge.HeaderCRC, strconv.FormatUint(uint64(ring.CRC(d)), 10))
	return m
}

// TestReceiverPacks: packs (several whole items in one message) and pieces
// in the orders and overlaps that Senders with different pack or piece sizes,
// a successor's republish and JetStream redeliveries produce: the ring gets
// every item once, in order, with its bytes; a pack whose item fails its
// CRC32C delivers the items before it and stops there (ErrIntegrity).
func TestReceiverPacks(t *testing.T) {
	type step struct {
		kind           string // "pack", "piece", "end"
		from, to       uint64 // pack: items; piece: item from
		i, n, bad      int    // piece i of n; pack: the item (from 0) with a wrong CRC, or -1
		forgedGarbling string // pack: "sum" (lengths that do not add up), "lists" (one CRC short)
	}
	pk := func(from, to uint64) step { return step{kind: "pack", from: from, to: to, bad: -1} }
	pc := func(seq uint64, i, n int) step { return step{kind: "piece", from: seq, i: i, n: n} }
	cases := []struct {
		name      string
		items     int
		steps     []step
		integrity uint64 // >0: Run fails with ErrIntegrity having committed this many items
		ignored   uint64
		dropped   int // the messages Run counts as dropped (0: not checked)
	}{
		{name: "in order", items: 8, steps: []step{pk(0, 3), pk(4, 6), pc(7, 0, 1)}},
		{name: "a successor packed differently", items: 7, dropped: 1, steps: []step{pk(0, 3), pk(2, 5), pk(0, 1), pc(6, 0, 1)}},
		{name: "pack after some pieces of its first item", items: 3, steps: []step{pc(0, 0, 3), pc(0, 1, 3), pk(0, 2), pc(0, 2, 3)}},
		{name: "pieces after a pack of their item", items: 4, steps: []step{pk(0, 1), pc(1, 0, 2), pc(1, 1, 2), pc(2, 0, 2), pc(2, 1, 2), pc(3, 0, 1)}},
		{name: "packs ahead are held", items: 7, steps: []step{pc(0, 0, 1), pk(4, 5), pk(1, 2), pc(3, 0, 1), pc(6, 0, 1)}},
		{name: "a held pack made stale by a longer one", items: 7, dropped: 2, steps: []step{pc(0, 0, 1), pk(3, 4), pk(2, 3), pk(1, 5), pc(6, 0, 1)}},
		{name: "a held pack reaching past the one that overtook it", items: 7, steps: []step{pc(0, 0, 1), pk(3, 6), pk(1, 4)}},
		{name: "two packs from the same item", items: 6, steps: []step{pc(0, 0, 1), pk(2, 3), pk(2, 5), pc(1, 0, 1)}},
		{name: "pieces ahead of a pack that carries them", items: 4, dropped: 2, steps: []step{pc(0, 0, 1), pc(2, 0, 2), pc(2, 1, 2), pk(1, 3)}},
		{name: "garbled packs are ignored", items: 3, ignored: 2, steps: []step{
			{kind: "pack", from: 0, to: 1, bad: -1, forgedGarbling: "sum"},
			{kind: "pack", from: 0, to: 1, bad: -1, forgedGarbling: "lists"},
			pk(0, 2)}},
		{name: "a bad item in a pack", items: 6, integrity: 3, steps: []step{pk(0, 1), {kind: "pack", from: 2, to: 4, bad: 1}, pc(5, 0, 1)}},
	}
	s := startServer(t, "", 0)
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 20*time.Second)
			name := ringName(t, "brp")
			subject := "shmpc.pack." + name
			r, err := bridge.NewReceiver(ctx, nc, name, bridge.ReceiverOptions{
				Subject: subject, Producer: producer.Options{Wait: 30 * time.Second, HugePages: shm.Off, Lock: shm.Off},
			})
			if err != nil {
				t.Fatal(err)
			}
			c := crafted{subject: subject, id: name + "-00000000000000ab", items: tc.items}
			for _, st := range tc.steps {
				var m *nats.Msg
				switch st.kind {
				case "pack":
					m = c.pack(st.from, st.to, st.bad)
					switch st.forgedGarbling {
					case "sum":
						m.Data = m.Data[1:]
					case "lists":
						crcs := m.Header.Get(bridge.HeaderCRC)
						m.Header.Set(bridge.HeaderCRC, crcs[:strings.LastIndexByte(crcs, ',')])
					}
				case "piece":
					m = c.piece(st.from, st.i, st.n)
				}
				if _, err := js.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			got := make(chan []consumer.Item, 1)
			cerr := make(chan error, 1)
			var delivered atomic.Int64
			go func() {
				cons, err := consumer.Open(ctx, name, consumer.Options{Wait: 30 * time.Second, PeerTimeout: time.Second, Copy: true})
				if err != nil {
					cerr <- err
					got <- nil
					return
				}
				var items []consumer.Item
				for {
					it, err := cons.Next(ctx)
					if err != nil {
						if err != io.EOF {
							cerr <- err
						}
						// Closed before the test looks for leftovers.
						if err := cons.Close(); err != nil && !errors.Is(err, consumer.ErrPeerLost) {
							t.Errorf("local consumer Close: %v", err)
						}
						got <- items
						return
					}
					items = append(items, consumer.Item{Seq: it.Seq, Data: append([]byte(nil), it.Data...)})
					if err := it.Release(); err != nil {
						cerr <- err
					}
					delivered.Add(1)
				}
			}()
			runErr := r.Run(ctx)
			st := r.Stats()
			if tc.integrity > 0 {
				if !errors.Is(runErr, bridge.ErrIntegrity) {
					t.Fatalf("Run = %v, want ErrIntegrity", runErr)
				}
				if st.Items != tc.integrity {
					t.Fatalf("committed %d items before the bad one, want %d", st.Items, tc.integrity)
				}
				// The ring goes with Close: once its consumer has what was committed.
				for delivered.Load() < int64(tc.integrity) {
					if ctx.Err() != nil {
						t.Fatalf("the local consumer got %d of the %d items committed", delivered.Load(), tc.integrity)
					}
					time.Sleep(time.Millisecond)
				}
				if err := r.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else if runErr != nil {
				t.Fatalf("Run = %v", runErr)
			}
			items := receive(t, got, 30*time.Second, "the local consumer's items")
			select {
			case err := <-cerr:
				if tc.integrity == 0 || !errors.Is(err, consumer.ErrPeerLost) {
					t.Fatalf("local consumer: %v", err)
				}
			default:
			}
			want := tc.items
			if tc.integrity > 0 {
				want = int(tc.integrity)
			}
			if len(items) != want {
				t.Fatalf("the local ring delivered %d items, want %d (stats %+v)", len(items), want, st)
			}
			for i, it := range items {
				if it.Seq != uint64(i) || !bytes.Equal(it.Data, packItem(it.Seq)) {
					t.Fatalf("item %d delivered as seq %d, %d bytes %.20q..., want item %d's %d bytes", i, it.Seq, len(it.Data), it.Data, i, len(packItem(uint64(i))))
				}
			}
			if st.Ignored != tc.ignored {
				t.Fatalf("ignored %d messages, want %d", st.Ignored, tc.ignored)
			}
			if tc.dropped > 0 && st.Dropped != uint64(tc.dropped) {
				t.Fatalf("dropped %d messages as already committed, want %d", st.Dropped, tc.dropped)
			}
			requireNoLeftovers(t, name)
		})
	}
}

// TestSenderPacks: a Sender publishes a burst of small items as packs of at
// most half the ring's slots, within a piece, and items larger than a piece
// as pieces; read back from the stream, every item is there once, in order,
// with its bytes and CRC32C.
func TestSenderPacks(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv)
	const slots, n = 8, 400
	const piece = 8000 // more than half the slots' worth of small items
	name := ringName(t, "bsp")
	subject := "shmpc.test." + name
	ctx := bounded(t, 60*time.Second)
	p, err := producer.Open(ctx, name, producer.Options{Slots: slots, SlotSize: 32768, HugePages: shm.Off, Lock: shm.Off})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := bridge.NewSender(ctx, nc, name, bridge.SenderOptions{Subject: subject, PieceSize: piece})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	item := func(seq uint64) []byte {
		if seq%50 == 49 {
			return bytes.Repeat([]byte{byte(seq)}, 20000) // three pieces
		}
		return packItem(seq)
	}
	// A full ring before Run: its first pack could take every slot but
	// for the bound.
	for i := range uint64(slots) {
		if err := p.Send(ctx, item(i)); err != nil {
			t.Fatal(err)
		}
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	for i := uint64(slots); i < n; i++ {
		if err := p.Send(ctx, item(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.End(ctx); err != nil {
		t.Fatalf("producer End: %v", err)
	}
	if err := receive(t, runErr, 2*time.Minute, "Run's return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := streamOf(ctx, t, nc, subject)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next, packs, biggest := uint64(0), 0, 0
	var assembling []byte
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		h := m.Header
		if h.Get(bridge.HeaderEnd) != "" {
			if h.Get(bridge.HeaderEnd) != strconv.Itoa(n) || next != n {
				t.Fatalf("end of %s items after item %d", h.Get(bridge.HeaderEnd), next)
			}
			continue
		}
		first, _ := strconv.ParseUint(h.Get(bridge.HeaderSeq), 10, 64)
		if first != next {
			t.Fatalf("message %d starts at item %d, want %d", seq, first, next)
		}
		if k := h.Get(bridge.HeaderPack); k != "" {
			packs++
			lens, crcs := strings.Split(h.Get(bridge.HeaderLen), ","), strings.Split(h.Get(bridge.HeaderCRC), ",")
			if strconv.Itoa(len(lens)) != k || len(crcs) != len(lens) || len(lens) > slots/2 || len(m.Data) > piece {
				t.Fatalf("pack of %s items: %d lengths, %d CRCs, %d bytes; want at most %d items within %d bytes", k, len(lens), len(crcs), len(m.Data), slots/2, piece)
			}
			biggest = max(biggest, len(lens))
			off := 0
			for i := range lens {
				l, _ := strconv.Atoi(lens[i])
				d := m.Data[off : off+l]
				if !bytes.Equal(d, item(next)) || crcs[i] != strconv.FormatUint(uint64(ring.CRC(d)), 10) {
					t.Fatalf("item %d in a pack: bytes or CRC32C wrong", next)
				}
				off += l
				next++
			}
			continue
		}
		assembling = append(assembling, m.Data...)
		if i, c, _ := strings.Cut(h.Get(bridge.HeaderPiece), "/"); i == c || strconv.Itoa(mustAtoi(t, i)+1) == c {
			if !bytes.Equal(assembling, item(next)) || h.Get(bridge.HeaderCRC) != strconv.FormatUint(uint64(ring.CRC(assembling)), 10) {
				t.Fatalf("item %d in pieces: bytes or CRC32C wrong", next)
			}
			assembling = nil
			next++
		}
	}
	if next != n {
		t.Fatalf("the stream holds items 0..%d, want %d", next, n)
	}
	if packs == 0 || biggest < 2 {
		t.Fatalf("%d packs, the largest of %d items: a burst of %d small items went out one by one", packs, biggest, n)
	}
	t.Logf("%d messages for %d items: %d packs, the largest of %d items", info.State.Msgs, n, packs, biggest)
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSenderReleasesALoneItem: an item that comes alone, with an earlier
// pack still in flight, is published and released without waiting for more
// items (a pack waits only for the acknowledgement in flight).
func TestSenderReleasesALoneItem(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv)
	name := ringName(t, "bsl")
	ctx := bounded(t, 60*time.Second)
	p, err := producer.Open(ctx, name, producer.Options{Slots: 8, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := bridge.NewSender(ctx, nc, name, bridge.SenderOptions{Subject: "shmpc.test." + name})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rctx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(rctx) }()
	for round := range 5 {
		for i := range 3 {
			if err := p.Send(ctx, []byte{byte(round), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64(3 * (round + 1))
		deadline := time.Now().Add(5 * time.Second)
		for p.Ring().Tail() < want {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d items released after 5s with the producer idle", round, p.Ring().Tail(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	stop()
	if err := receive(t, runErr, 2*time.Minute, "Run's return after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
}
