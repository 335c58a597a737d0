package ring

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// modelItem is the model's record of a committed item.
type modelItem struct {
	data     []byte // what the slot holds now (scribbles included)
	orig     []byte // what was committed
	wrongCRC bool   // committed with a CRC that does not match orig
}

// bad reports whether Verify must fail on the slot as it is now.
func (m modelItem) bad() bool { return m.wrongCRC || !bytes.Equal(m.data, m.orig) }

// held is an item the model's consumer holds (acquired, not released).
type held struct {
	it     Item
	copied bool // from AcquireCopy: Data is private
	bad    bool // for a copy: Verify must fail (decided at copy time)
}

// ringModel is a plain queue: the ring must agree with it after every step.
type ringModel struct {
	buf      []byte
	r        *Ring // the producer's view
	cr       *Ring // the consumer's view (a separate Open, as in another process)
	slots    int
	slotSize int

	w        *Writer
	reserved bool
	resSeq   uint64
	resLen   int

	rd       *Reader
	next     uint64
	holding  map[uint64]held
	released map[uint64]bool // released but above the tail (a gap below)

	head, tail uint64
	items      map[uint64]*modelItem // committed, not yet passed by the tail
	ended      bool
	drained    bool
	stats      Stats
	committed  uint64 // bytes committed (Counters.BytesCommitted)
}

func (m *ringModel) init(t *rapid.T) {
	m.slots = rapid.IntRange(1, 8).Draw(t, "slots")
	m.slotSize = rapid.SampledFrom([]int{1, 7, 64, 100, 4096, 4097}).Draw(t, "slotSize")
	n, err := Size(m.slots, m.slotSize)
	if err != nil {
		t.Fatalf("Size: %v", err)
	}
	m.buf = make([]byte, n)
	m.r, err = Format(m.buf, Config{Name: "model", Slots: m.slots, SlotSize: m.slotSize})
	if err != nil {
		t.Fatalf("Format: %v", err)
	}
	m.cr = m.open(t)
	m.w = m.r.Writer()
	m.rd = m.cr.Reader()
	m.holding = map[uint64]held{}
	m.released = map[uint64]bool{}
	m.items = map[uint64]*modelItem{}
}

func (m *ringModel) open(t *rapid.T) *Ring {
	r, err := Open(m.buf)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// reserve: Reserve and write a random payload of random length into the slot.
func (m *ringModel) reserve(t *rapid.T) {
	s, err := m.w.Reserve()
	switch {
	case m.ended:
		if !errors.Is(err, ErrEnded) {
			t.Fatalf("Reserve after the end: %v", err)
		}
		return
	case m.head-m.tail == uint64(m.slots):
		if err != ErrFull {
			t.Fatalf("Reserve on a full ring: %v", err)
		}
		return
	case err != nil:
		t.Fatalf("Reserve: %v", err)
	}
	if s.Seq != m.head || len(s.Buf) != m.slotSize || cap(s.Buf) != m.slotSize {
		t.Fatalf("Reserve: seq %d (want %d), len %d cap %d (want %d)", s.Seq, m.head, len(s.Buf), cap(s.Buf), m.slotSize)
	}
	n := rapid.IntRange(0, m.slotSize).Draw(t, "len")
	copy(s.Buf, rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "payload"))
	m.reserved, m.resSeq, m.resLen = true, s.Seq, n
}

// commit: Commit, CommitCRC with the right CRC, or CommitCRC with a wrong one.
func (m *ringModel) commit(t *rapid.T) {
	if !m.reserved {
		if err := m.w.Commit(0); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("Commit without Reserve: %v", err)
		}
		return
	}
	data := slices.Clone(m.r.slot(m.resSeq)[:m.resLen])
	var err error
	wrong := false
	switch rapid.IntRange(0, 4).Draw(t, "commitKind") {
	case 0:
		err = m.w.CommitCRC(m.resLen, CRC(data)^0x10)
		wrong = true
	case 1, 2:
		err = m.w.CommitCRC(m.resLen, CRC(data))
	default:
		err = m.w.Commit(m.resLen)
	}
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	m.items[m.head] = &modelItem{data: data, orig: slices.Clone(data), wrongCRC: wrong}
	m.head++
	m.committed += uint64(m.resLen)
	m.reserved = false
}

// crashCommit: the producer dies at a random step of a commit (after writing a random
// part of the payload); a new producer process resumes.
func (m *ringModel) crashCommit(t *rapid.T) {
	if m.ended || m.head-m.tail == uint64(m.slots) {
		t.Skip("no slot to reserve")
	}
	s, err := m.w.Reserve()
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	n := rapid.IntRange(0, m.slotSize).Draw(t, "written")
	copy(s.Buf, rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "partial"))
	step := rapid.IntRange(0, commitSteps-1).Draw(t, "crashStep")
	if err := m.w.commit(rapid.IntRange(0, m.slotSize).Draw(t, "crashLen"), 0, step); err != errCrashed {
		t.Fatalf("commit stopped at step %d: %v", step, err)
	}
	m.w = m.open(t).Writer()
	m.reserved = false
}

// acquire: Acquire or AcquireCopy; the item must be the model's next one, byte for byte.
func (m *ringModel) acquire(t *rapid.T) {
	copied := rapid.Bool().Draw(t, "copy")
	var it Item
	var err error
	if copied {
		it, err = m.rd.AcquireCopy(make([]byte, m.slotSize))
	} else {
		it, err = m.rd.Acquire()
	}
	if m.next == m.head {
		want := ErrEmpty
		if m.ended {
			want = io.EOF
		}
		if err != want {
			t.Fatalf("Acquire at the head (%d): %v, want %v", m.head, err, want)
		}
		return
	}
	mi := m.items[m.next]
	if copied && mi.bad() {
		if !errors.Is(err, ErrIntegrity) {
			t.Fatalf("AcquireCopy of bad item %d: %v", m.next, err)
		}
		m.stats.IntegrityErrors++
	} else if err != nil {
		t.Fatalf("Acquire of item %d: %v", m.next, err)
	}
	if it.Seq != m.next || !bytes.Equal(it.Data, mi.data) {
		t.Fatalf("Acquire: item %d (%d bytes), want item %d (%d bytes) with the model's bytes", it.Seq, len(it.Data), m.next, len(mi.data))
	}
	m.holding[it.Seq] = held{it: it, copied: copied, bad: copied && mi.bad()}
	m.next++
}

// pick draws one of the held items.
func (m *ringModel) pick(t *rapid.T) held {
	if len(m.holding) == 0 {
		t.Skip("nothing acquired")
	}
	seqs := make([]uint64, 0, len(m.holding))
	for s := range m.holding {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	return m.holding[rapid.SampledFrom(seqs).Draw(t, "held")]
}

// verify: Verify a held item; it fails exactly when the model says the bytes are bad.
func (m *ringModel) verify(t *rapid.T) {
	h := m.pick(t)
	bad := h.bad
	if !h.copied {
		bad = m.items[h.it.Seq].bad()
	}
	err := m.rd.Verify(h.it)
	if bad != errors.Is(err, ErrIntegrity) || (!bad && err != nil) {
		t.Fatalf("Verify of item %d (bad %v): %v", h.it.Seq, bad, err)
	}
	if bad {
		m.stats.IntegrityErrors++
	}
}

// scribble: another process changes a byte of a published, unreleased slot.
func (m *ringModel) scribble(t *rapid.T) {
	var cands []uint64
	for s := m.tail; s < m.head; s++ {
		if len(m.items[s].data) > 0 {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		t.Skip("no published bytes")
	}
	seq := rapid.SampledFrom(cands).Draw(t, "scribbleSeq")
	mi := m.items[seq]
	pos := rapid.IntRange(0, len(mi.data)-1).Draw(t, "scribblePos")
	bit := byte(1) << rapid.IntRange(0, 7).Draw(t, "scribbleBit")
	m.r.slot(seq)[pos] ^= bit
	mi.data[pos] ^= bit
}

// release: Release a held item (any order); the tail follows the contiguous run.
func (m *ringModel) release(t *rapid.T) {
	h := m.pick(t)
	if err := m.rd.Release(h.it.Seq); err != nil {
		t.Fatalf("Release %d: %v", h.it.Seq, err)
	}
	delete(m.holding, h.it.Seq)
	m.released[h.it.Seq] = true
	m.stats.Items++
	m.stats.Bytes += uint64(len(h.it.Data))
	for m.released[m.tail] {
		delete(m.released, m.tail)
		delete(m.items, m.tail)
		m.tail++
	}
}

// consume: acquire, then release one held item (not necessarily that one).
func (m *ringModel) consume(t *rapid.T) {
	m.acquire(t)
	if len(m.holding) > 0 {
		m.release(t)
	}
}

// badRelease: releasing an item not held fails and changes nothing.
func (m *ringModel) badRelease(t *rapid.T) {
	seq := rapid.Uint64Range(0, m.head+2).Draw(t, "badSeq")
	if _, ok := m.holding[seq]; ok {
		t.Skip("held")
	}
	if err := m.rd.Release(seq); !errors.Is(err, ErrNotAcquired) {
		t.Fatalf("Release of item %d not held: %v", seq, err)
	}
}

// produce: reserve and commit in one step, the producer's usual loop.
func (m *ringModel) produce(t *rapid.T) {
	m.reserve(t)
	if m.reserved {
		m.commit(t)
	}
}

// end: the producer ends the stream (idempotent). Rare, so streams get long.
func (m *ringModel) end(t *rapid.T) {
	if !m.ended && rapid.IntRange(0, 49).Draw(t, "endNow") != 25 {
		t.Skip("not yet")
	}
	if err := m.w.End(); err != nil {
		t.Fatalf("End: %v", err)
	}
	m.ended = true
	m.reserved = false
}

// drain: the consumer marks an ended, fully released stream drained.
func (m *ringModel) drain(t *rapid.T) {
	if !m.ended || m.tail != m.head {
		t.Skip("not drained")
	}
	m.cr.SetDrained()
	m.drained = true
}

// takeover: the consumer dies; a new consumer process opens the ring and starts at the
// tail. Everything the old one held or released above the tail comes again.
func (m *ringModel) takeover(t *rapid.T) {
	m.cr = m.open(t)
	m.rd = m.cr.Reader()
	m.next = m.tail
	m.holding = map[uint64]held{}
	m.released = map[uint64]bool{}
}

// resume: the producer dies (perhaps with a reserved, written, uncommitted slot); a new
// producer process resumes at the head.
func (m *ringModel) resume(t *rapid.T) {
	m.w = m.open(t).Writer()
	m.reserved = false
}

// check: the invariants and the model agree.
func (m *ringModel) check(t *rapid.T) {
	for _, r := range []*Ring{m.r, m.cr} {
		if err := r.Check(); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	r := m.r
	if r.Head() != m.head || r.Tail() != m.tail {
		t.Fatalf("head/tail %d/%d, model %d/%d", r.Head(), r.Tail(), m.head, m.tail)
	}
	if f, e := r.End(); e != m.ended || (e && f != m.head) {
		t.Fatalf("End() = %d, %v; model ended %v at %d", f, e, m.ended, m.head)
	}
	if r.Drained() != m.drained {
		t.Fatalf("drained %v, model %v", r.Drained(), m.drained)
	}
	if m.rd.Pending() != len(m.holding) || m.rd.Next() != m.next {
		t.Fatalf("pending %d next %d, model %d %d", m.rd.Pending(), m.rd.Next(), len(m.holding), m.next)
	}
	if st := r.Stats(); st != m.stats {
		t.Fatalf("stats %+v, model %+v", st, m.stats)
	}
	want := Counters{ItemsCommitted: m.head, BytesCommitted: m.committed,
		ItemsReleased: m.stats.Items, BytesReleased: m.stats.Bytes, IntegrityErrors: m.stats.IntegrityErrors}
	if c := m.cr.Counters(); c != want {
		t.Fatalf("counters %+v, model %+v", c, want)
	}
}

// TestModel runs random sequences of every producer and consumer action, including
// crashes, takeovers, resumes and scribbles, against a model queue.
//
// It runs several rapid.Check rounds of 100 cases (each round with its own random seed,
// printed on failure and replayable with -rapid.seed).
func TestModel(t *testing.T) {
	rounds := 10
	if raceEnabled || testing.Short() {
		rounds = 2
	}
	for range rounds {
		checkModel(t)
	}
	t.Logf("runs %d, items committed %d, most ring wraps in one run %d, runs ended %d",
		modelStats.runs, modelStats.items, modelStats.maxWraps, modelStats.ended)
}

func checkModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var m ringModel
		m.init(t)
		actions := map[string]func(*rapid.T){
			"reserve":     m.reserve,
			"produce":     m.produce,
			"commit":      m.commit,
			"crashCommit": m.crashCommit,
			"acquire":     m.acquire,
			"verify":      m.verify,
			"scribble":    m.scribble,
			"release":     m.release,
			"consume":     m.consume,
			"badRelease":  m.badRelease,
			"end":         m.end,
			"drain":       m.drain,
			"takeover":    m.takeover,
			"resume":      m.resume,
			"":            m.check,
		}
		// Several rounds: long enough for the indices to wrap the ring many times.
		for range 16 {
			t.Repeat(actions)
		}
		modelStats.runs++
		modelStats.items += m.head
		modelStats.maxWraps = max(modelStats.maxWraps, m.head/uint64(m.slots))
		if m.ended {
			modelStats.ended++
		}
	})
}

// modelStats shows in -v output that the runs reach deep states.
var modelStats struct{ runs, items, maxWraps, ended uint64 }
