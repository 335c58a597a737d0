package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/internal/payload"
)

// Kinds of forged message. The first three have no valid bridge headers or
// another stream's identity: recv must ignore them (count them). The last two
// are well-formed pieces of the real stream whose bytes do not match: recv
// may meet them before the real piece (an integrity error, exit 4) or after
// it (a copy it drops); never delivered either way.
var forgeKinds = []string{"noheaders", "garbled", "otherstream", "wrongcrc", "truncated"}

// ignorable reports whether recv must ignore a forged message of kind (a
// forged pack whose lengths do not add up is ignored whatever its kind).
func ignorable(kind string) bool {
	return kind == "noheaders" || kind == "garbled" || kind == "otherstream"
}

// forgery is one message a third client publishes onto the subject.
type forgery struct {
	kind      string
	at        int    // real messages seen on the subject before it is published
	streamSeq uint64 // its sequence in the JetStream stream (0: not published)
	seq       uint64 // the item it claims (well-formed kinds)
	variant   string
	ignored   bool // recv must ignore it (set by forge)
}

// forger is the third client: it watches the subject (a core subscription)
// to learn the stream's identity and progress, and publishes the forgeries.
type forger struct {
	t      *trial
	nc     *nats.Conn
	js     jetstream.JetStream
	mu     sync.Mutex
	seen   int
	id     string
	maxSeq uint64
}

// pieceSize is the bytes per message of the bridge at the trial's
// max_payload (bridge's headroom is 4 KiB).
func (t *trial) pieceSize() int { return t.maxPayload - 4096 }

func (t *trial) pieces() int { return max(1, (t.size+t.pieceSize()-1)/t.pieceSize()) }

// packItems is the most items the bridge sends in one message at the
// trial's geometry: half the slots, within a piece (1: no packs).
func (t *trial) packItems() int {
	if t.size > t.pieceSize() {
		return 1
	}
	return max(1, min(t.slots/2, t.pieceSize()/t.size))
}

// messages is the fewest messages that carry n items.
func (t *trial) messages(n int) int {
	if k := t.packItems(); k > 1 {
		return (n + k - 1) / k
	}
	return n * t.pieces()
}

func scribble(t *trial) {
	total := t.messages(t.count)
	var fs []forgery
	for range 3 + t.rng.IntN(6) {
		fs = append(fs, forgery{kind: forgeKinds[t.rng.IntN(len(forgeKinds))], at: 1 + int(float64(total)*0.5*t.rng.Float64())})
	}
	for i := 1; i < len(fs); i++ { // in publication order
		for j := i; j > 0 && fs[j].at < fs[j-1].at; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	var ks []string
	for _, f := range fs {
		ks = append(ks, fmt.Sprintf("%s@%d", f.kind, f.at))
	}
	t.drawf("forged messages after N real ones: %s", strings.Join(ks, " "))
	p := t.begin()
	nc, js := t.connect(p.n.url, "forger")
	defer nc.Close()
	fg := &forger{t: t, nc: nc, js: js}
	sub, err := nc.Subscribe(t.subject, func(m *nats.Msg) {
		fg.mu.Lock()
		defer fg.mu.Unlock()
		if id := m.Header.Get(bridge.HeaderStream); id != "" && fg.id == "" {
			fg.id = id
		}
		if s, err := strconv.ParseUint(m.Header.Get(bridge.HeaderSeq), 10, 64); err == nil && m.Header.Get(bridge.HeaderStream) == fg.id {
			fg.maxSeq = max(fg.maxSeq, s)
			fg.seen++
		}
	})
	if err != nil {
		t.fatalf("forger: subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	defer sub.Unsubscribe()
	for i := range fs {
		fg.publish(&fs[i], p)
	}
	t.requireExit(p.prod, procBound, 0)
	t.requireExit(p.send, procBound, 0)
	code := t.requireExit(p.recv, procBound, 0, 4)
	recvLine := lastLine(p.recv.stderr.String())
	ignored := recvIgnored(p.recv.stderr.String())
	endSeq := fg.endSeq(len(fs))
	wantIgnored, integrityBefore := 0, 0
	for _, f := range fs {
		if f.streamSeq == 0 || f.streamSeq > endSeq {
			continue
		}
		if f.ignored {
			wantIgnored++
		} else {
			integrityBefore++
		}
	}
	switch code {
	case 0:
		t.requireExit(p.cons, procBound, 0)
		t.checkDelivery([]string{p.manifest}, true)
		if ignored != wantIgnored {
			t.failf("recv ignored %d messages, %d forged ones without valid headers or of another stream were before the end: %q", ignored, wantIgnored, recvLine)
		}
		t.res.Outcome = fmt.Sprintf("recv exit 0, %d ignored (%d of %d forged before the end)", ignored, wantIgnored+integrityBefore, len(fs))
	case 4:
		if !strings.Contains(p.recv.stderr.String(), "integrity") && !strings.Contains(p.recv.stderr.String(), "crc32c") {
			t.failf("recv exit 4 without naming an integrity error: %q", recvLine)
		}
		if integrityBefore == 0 {
			t.failf("recv exit 4, but no forged piece of the stream came before its end: the real stream was refused")
		}
		// recv leaves its ring for a successor; the remote consume would wait
		// -peer-timeout for one: stop it and remove the ring with gc.
		t.kill(p.cons)
		gc := t.start("gc", t.cfg.shmpc, "gc", "-name", t.dst)
		t.requireExit(gc, 30*time.Second, 0)
		t.checkDelivery([]string{p.manifest}, false)
		t.res.Outcome = fmt.Sprintf("recv exit 4 (%s), %d items delivered before it", strings.TrimPrefix(lastErrLine(p.recv.stderr.String()), "shmpc-bridge recv: "), manifestLines(p.manifest))
	}
	t.stopNatsd(p.n)
}

// lastErrLine returns the error line of a failed recv.
func lastErrLine(s string) string {
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.Contains(l, "integrity") || strings.Contains(l, "crc32c") {
			return l
		}
	}
	return lastLine(s)
}

// publish waits (bounded) until f.at real messages were seen, then forges
// and publishes f.
func (fg *forger) publish(f *forgery, p *pipe) {
	t := fg.t
	deadline := time.Now().Add(90 * time.Second)
	for {
		fg.mu.Lock()
		seen, id, maxSeq := fg.seen, fg.id, fg.maxSeq
		fg.mu.Unlock()
		if seen >= f.at && id != "" {
			m := fg.forge(f, id, maxSeq)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ack, err := fg.js.PublishMsg(ctx, m)
			cancel()
			if err != nil {
				t.fatalf("forger: publish %s: %v", f.kind, err)
			}
			f.streamSeq = ack.Sequence
			t.logf("forged %s (%s) as stream message %d after %d real ones", f.kind, f.variant, ack.Sequence, seen)
			return
		}
		if !p.send.running() || time.Now().After(deadline) {
			t.logf("forger: %s not published: %d real messages seen, wanted %d", f.kind, seen, f.at)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// forge builds f's message for the stream id whose latest item seen is last.
func (fg *forger) forge(f *forgery, id string, last uint64) *nats.Msg {
	t := fg.t
	m := nats.NewMsg(t.subject)
	seq := min(uint64(t.count-1), last+1+uint64(t.rng.IntN(2*t.slots+4)))
	f.seq = seq
	piece := t.rng.IntN(t.pieces())
	off := piece * t.pieceSize()
	n := min(t.size-off, t.pieceSize())
	item := make([]byte, t.size)
	payload.Fill(item, seq)
	valid := func(id string, crc uint32) {
		m.Header.Set(bridge.HeaderStream, id)
		m.Header.Set(bridge.HeaderSeq, strconv.FormatUint(seq, 10))
		m.Header.Set(bridge.HeaderPiece, fmt.Sprintf("%d/%d", piece, t.pieces()))
		m.Header.Set(bridge.HeaderOffset, strconv.Itoa(off))
		m.Header.Set(bridge.HeaderLen, strconv.Itoa(t.size))
		m.Header.Set(bridge.HeaderCRC, strconv.FormatUint(uint64(crc), 10))
		m.Header.Set(bridge.HeaderSlots, strconv.Itoa(t.slots))
		m.Header.Set(bridge.HeaderSlotSize, strconv.Itoa(t.size))
		m.Header.Set(bridge.HeaderStreamItems, strconv.Itoa(t.count))
	}
	crc := payload.CRC(seq, t.size)
	m.Data = item[off : off+n]
	f.ignored = ignorable(f.kind)
	if f.kind != "noheaders" && t.packItems() > 1 && t.rng.IntN(2) == 0 {
		return fg.forgePack(f, id)
	}
	switch f.kind {
	case "noheaders":
		m = nats.NewMsg(t.subject)
		m.Data = item[:min(len(item), 1+t.rng.IntN(8192))]
		f.variant = fmt.Sprintf("%d bytes", len(m.Data))
	case "garbled":
		valid(id, crc)
		switch v := t.rng.IntN(5); v {
		case 0:
			m.Header.Set(bridge.HeaderStream, "garbage-not-a-key")
			f.variant = "stream identity"
		case 1:
			m.Header.Set(bridge.HeaderPiece, fmt.Sprintf("%d/%d", t.pieces(), t.pieces()))
			f.variant = "piece index past its count"
		case 2:
			m.Header.Set(bridge.HeaderLen, "-12x")
			f.variant = "length"
		case 3:
			m.Header.Set(bridge.HeaderOffset, strconv.Itoa(t.size))
			f.variant = "piece beyond the item"
		default:
			m.Header.Del(bridge.HeaderCRC)
			f.variant = "no crc32c"
		}
	case "otherstream":
		other := id[:strings.LastIndexByte(id, '-')] + fmt.Sprintf("-%016x", t.rng.Uint64()|1)
		valid(other, crc)
		f.variant = "stream " + other[strings.LastIndexByte(other, '-')+1:]
	case "wrongcrc":
		valid(id, crc)
		if t.rng.IntN(2) == 0 {
			m.Header.Set(bridge.HeaderCRC, strconv.FormatUint(uint64(crc^1<<uint(t.rng.IntN(32))), 10))
			f.variant = fmt.Sprintf("item %d piece %d, header crc32c wrong", seq, piece)
		} else {
			d := append([]byte(nil), m.Data...)
			d[t.rng.IntN(len(d))] ^= 1 << uint(t.rng.IntN(8))
			m.Data = d
			f.variant = fmt.Sprintf("item %d piece %d, a bit of the bytes flipped", seq, piece)
		}
	case "truncated":
		valid(id, crc)
		m.Data = m.Data[:t.rng.IntN(len(m.Data))]
		f.variant = fmt.Sprintf("item %d piece %d, %d of %d bytes", seq, piece, len(m.Data), n)
	}
	return m
}

// forgePack builds f as a pack of 2 or more items from f.seq on.
func (fg *forger) forgePack(f *forgery, id string) *nats.Msg {
	t := fg.t
	k := 2 + t.rng.IntN(t.packItems()-1)
	seq := min(f.seq, uint64(t.count-k))
	f.seq = seq
	m := nats.NewMsg(t.subject)
	var lens, crcs []string
	for i := range k {
		item := make([]byte, t.size)
		payload.Fill(item, seq+uint64(i))
		m.Data = append(m.Data, item...)
		lens = append(lens, strconv.Itoa(t.size))
		crcs = append(crcs, strconv.FormatUint(uint64(payload.CRC(seq+uint64(i), t.size)), 10))
	}
	set := func(id string) {
		m.Header.Set(bridge.HeaderStream, id)
		m.Header.Set(bridge.HeaderSeq, strconv.FormatUint(seq, 10))
		m.Header.Set(bridge.HeaderPack, strconv.Itoa(k))
		m.Header.Set(bridge.HeaderLen, strings.Join(lens, ","))
		m.Header.Set(bridge.HeaderCRC, strings.Join(crcs, ","))
		m.Header.Set(bridge.HeaderSlots, strconv.Itoa(t.slots))
		m.Header.Set(bridge.HeaderSlotSize, strconv.Itoa(t.size))
		m.Header.Set(bridge.HeaderStreamItems, strconv.Itoa(t.count))
	}
	set(id)
	bad := t.rng.IntN(k)
	switch f.kind {
	case "garbled":
		switch v := t.rng.IntN(4); v {
		case 0:
			m.Header.Set(bridge.HeaderLen, strings.Join(lens[1:], ","))
			f.variant = "pack lengths list short"
		case 1:
			m.Header.Set(bridge.HeaderPack, "1")
			f.variant = "pack of one"
		case 2:
			m.Header.Set(bridge.HeaderPiece, "0/1")
			f.variant = "pack with a piece header"
		default:
			lens[bad] = strconv.Itoa(t.size + 1)
			m.Header.Set(bridge.HeaderLen, strings.Join(lens, ","))
			f.variant = "pack lengths past its bytes"
		}
	case "otherstream":
		other := id[:strings.LastIndexByte(id, '-')] + fmt.Sprintf("-%016x", t.rng.Uint64()|1)
		set(other)
		f.variant = "pack, stream " + other[strings.LastIndexByte(other, '-')+1:]
	case "wrongcrc":
		if t.rng.IntN(2) == 0 {
			c, _ := strconv.ParseUint(crcs[bad], 10, 32)
			crcs[bad] = strconv.FormatUint(c^1<<uint(t.rng.IntN(32)), 10)
			m.Header.Set(bridge.HeaderCRC, strings.Join(crcs, ","))
			f.variant = fmt.Sprintf("pack of items %d..%d, item %d's crc32c wrong", seq, seq+uint64(k)-1, seq+uint64(bad))
		} else {
			m.Data[bad*t.size+t.rng.IntN(t.size)] ^= 1 << uint(t.rng.IntN(8))
			f.variant = fmt.Sprintf("pack of items %d..%d, a bit of item %d flipped", seq, seq+uint64(k)-1, seq+uint64(bad))
		}
	case "truncated":
		m.Data = m.Data[:t.rng.IntN(len(m.Data))]
		f.variant = fmt.Sprintf("pack of items %d..%d, %d of %d bytes (lengths do not add up: ignored)", seq, seq+uint64(k)-1, len(m.Data), k*t.size)
		f.ignored = true
	}
	return m
}

// endSeq returns the JetStream sequence of the stream's end message (the
// last message of the real stream; the forgeries may follow it): messages
// after it are never read by recv.
func (fg *forger) endSeq(forged int) uint64 {
	t := fg.t
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := fg.js.Stream(ctx, bridge.StreamName(t.subject))
	if err != nil {
		t.fatalf("forger: stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.fatalf("forger: stream info: %v", err)
	}
	for s := info.State.LastSeq; s > 0 && s+uint64(forged)+1 > info.State.LastSeq; s-- {
		m, err := st.GetMsg(ctx, s)
		if err != nil {
			t.fatalf("forger: message %d: %v", s, err)
		}
		if m.Header.Get(bridge.HeaderEnd) != "" && m.Header.Get(bridge.HeaderStream) == fg.id {
			return s
		}
	}
	t.fatalf("forger: no end message among the stream's last %d", forged+1)
	return 0
}
