package ring

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for _, c := range []struct {
		slots, slotSize, want int
	}{
		// header 768 + 64 per descriptor, rounded to the alignment, then slots*stride.
		{1, 1, 4096 + 4096},
		{8, 4096, 4096 + 8*4096},
		{8, 4097, 4096 + 8*8192},
		{63, 4096, 8192 + 63*4096}, // 768 + 63*64 = 4800 > 4096
		{8, 2 << 20, 2<<20 + 8*(2<<20)},
		{8, 8 << 20, 2<<20 + 8*(8<<20)},
		{2, 3 << 20, 4096 + 2*(3<<20)}, // 3 MiB is not a multiple of 2 MiB: 4 KiB alignment
	} {
		got, err := Size(c.slots, c.slotSize)
		if err != nil || got != c.want {
			t.Errorf("Size(%d, %d) = %d, %v; want %d", c.slots, c.slotSize, got, err, c.want)
		}
	}
	for _, c := range [][2]int{{0, 1}, {1, 0}, {-1, 4096}, {MaxSlots + 1, 1}, {MaxSlots, math.MaxInt / 2}, {2, math.MaxInt}} {
		if _, err := Size(c[0], c[1]); !errors.Is(err, ErrGeometry) {
			t.Errorf("Size(%d, %d): error %v, want ErrGeometry", c[0], c[1], err)
		}
	}
}

func TestFormatOpenRoundTrip(t *testing.T) {
	cfg := Config{Name: strings.Repeat("n", MaxNameLen), Slots: 5, SlotSize: 3000, Flags: FlagHuge | FlagPretouch | 1<<30,
		OwnerUID: 1234, StreamItems: 1 << 40, StreamBytes: 1<<62 + 7}
	n, err := Size(cfg.Slots, cfg.SlotSize)
	noErr(t, err, "Size")
	buf := newBuf(t, n+100) // a longer buffer is fine
	for i := range buf {
		buf[i] = 0xA5 // Format must not rely on zeroed memory
	}
	r, err := Format(buf, cfg)
	noErr(t, err, "Format")
	t.Cleanup(func() { noErr(t, r.Check(), "Check") })
	o, err := Open(buf)
	noErr(t, err, "Open")
	for _, x := range []*Ring{r, o} {
		if x.Name() != cfg.Name || x.Slots() != cfg.Slots || x.SlotSize() != cfg.SlotSize || x.Flags() != cfg.Flags ||
			x.OwnerUID() != cfg.OwnerUID || x.StreamItems() != cfg.StreamItems || x.StreamBytes() != cfg.StreamBytes ||
			x.TotalSize() != n {
			t.Fatalf("ring fields differ from config: %+v", x)
		}
		if x.Head() != 0 || x.Tail() != 0 || x.Drained() || x.Stats() != (Stats{}) {
			t.Fatalf("fresh ring not empty")
		}
		if f, e := x.End(); f != 0 || e {
			t.Fatalf("fresh ring ended")
		}
		for i := range AppWords {
			if x.AppWord(i).Load() != 0 {
				t.Fatalf("app word %d not zeroed", i)
			}
		}
		if x.ConsumerWaiting().Load() != 0 || x.ProducerWaiting().Load() != 0 {
			t.Fatal("doorbells not zeroed")
		}
		if (x.ProducerID() != Identity{}) || (x.ConsumerID() != Identity{}) {
			t.Fatal("identities not zeroed")
		}
	}
	if r.AppWord(3) != o.AppWord(3) || r.ConsumerWaiting() != o.ConsumerWaiting() {
		t.Fatal("two views of one buffer return different words")
	}
}

func TestFormatErrors(t *testing.T) {
	n, _ := Size(2, 100)
	buf := newBuf(t, n+8)
	for _, c := range []struct {
		buf  []byte
		cfg  Config
		want error
	}{
		{buf, Config{Name: "", Slots: 2, SlotSize: 100}, ErrConfig},
		{buf, Config{Name: strings.Repeat("x", MaxNameLen+1), Slots: 2, SlotSize: 100}, ErrConfig},
		{buf, Config{Name: "a", Slots: 0, SlotSize: 100}, ErrGeometry},
		{buf, Config{Name: "a", Slots: 2, SlotSize: -1}, ErrGeometry},
		{buf, Config{Name: "a", Slots: MaxSlots + 1, SlotSize: 1}, ErrGeometry},
		{buf[:n-1], Config{Name: "a", Slots: 2, SlotSize: 100}, ErrGeometry},
		{buf[1 : n+1], Config{Name: "a", Slots: 2, SlotSize: 100}, ErrGeometry}, // misaligned
		{buf[4 : n+4], Config{Name: "a", Slots: 2, SlotSize: 100}, ErrGeometry}, // misaligned
		{nil, Config{Name: "a", Slots: 2, SlotSize: 100}, ErrGeometry},
	} {
		_, err := Format(c.buf, c.cfg)
		if !errors.Is(err, c.want) {
			t.Errorf("Format(len %d, %+v): %v, want %v", len(c.buf), c.cfg, err, c.want)
		}
		var e *Error
		if !errors.As(err, &e) || e.Op != "format ring" {
			t.Errorf("error %v is not an *Error of format ring", err)
		}
	}
	if _, err := Open(buf[1 : n+1]); !errors.Is(err, ErrGeometry) {
		t.Errorf("Open on a misaligned buffer: %v", err)
	}
}

// TestOpenErrors corrupts one header field at a time: Open and Check both report it
// with the right sentinel, and a fresh copy of the ring still opens.
func TestOpenErrors(t *testing.T) {
	type mut func(h *header, buf []byte) []byte
	set := func(f func(h *header)) mut { return func(h *header, buf []byte) []byte { f(h); return buf } }
	for _, c := range []struct {
		name string
		mut  mut
		want error
	}{
		{"magic zero", set(func(h *header) { h.magic.Store(0) }), ErrNotFormatted},
		{"magic other", set(func(h *header) { h.magic.Store(magicWord + 1) }), ErrBadMagic},
		{"version", set(func(h *header) { h.version.Add(1) }), ErrVersion},
		{"header size", set(func(h *header) { h.headerSize.Add(64) }), ErrGeometry},
		{"slots zero", set(func(h *header) { h.slots.Store(0) }), ErrGeometry},
		{"slots huge", set(func(h *header) { h.slots.Store(1 << 62) }), ErrGeometry},
		{"slots plus one", set(func(h *header) { h.slots.Add(1) }), ErrGeometry},
		{"slot size zero", set(func(h *header) { h.slotSize.Store(0) }), ErrGeometry},
		{"slot size huge", set(func(h *header) { h.slotSize.Store(math.MaxUint64) }), ErrGeometry},
		{"slot size larger", set(func(h *header) { h.slotSize.Store(5000) }), ErrGeometry},
		{"stride", set(func(h *header) { h.slotStride.Store(64) }), ErrGeometry},
		{"align", set(func(h *header) { h.slotAlign.Store(HugePageSize) }), ErrGeometry},
		{"desc offset", set(func(h *header) { h.descOffset.Store(0) }), ErrGeometry},
		{"data offset", set(func(h *header) { h.dataOffset.Add(4096) }), ErrGeometry},
		{"total size", set(func(h *header) { h.totalSize.Add(1) }), ErrGeometry},
		{"buffer short", func(h *header, buf []byte) []byte { return buf[:len(buf)-1] }, ErrGeometry},
		{"buffer shorter than header", func(h *header, buf []byte) []byte { return buf[:100] }, ErrGeometry},
		{"name empty", set(func(h *header) { h.nameLen.Store(0) }), ErrCorrupt},
		{"name long", set(func(h *header) { h.nameLen.Store(MaxNameLen + 1) }), ErrCorrupt},
		{"name huge", set(func(h *header) { h.nameLen.Store(math.MaxUint64) }), ErrCorrupt},
		{"name padding", set(func(h *header) { h.name[7].Store(1) }), ErrCorrupt},
		{"tail past head", set(func(h *header) { h.tail.Store(1) }), ErrIndices},
		{"head past tail+slots", set(func(h *header) { h.head.Store(4) }), ErrIndices},
		{"head wrapped", set(func(h *header) { h.head.Store(math.MaxUint64); h.tail.Store(2) }), ErrIndices},
		{"end not head", set(func(h *header) { h.end.Store(endedBit | 2) }), ErrIndices},
		{"end no bit", set(func(h *header) { h.end.Store(2) }), ErrCorrupt},
		{"drained not ended", set(func(h *header) { h.drained.Store(1) }), ErrIndices},
		{"drained value", set(func(h *header) { h.drained.Store(7) }), ErrCorrupt},
		{"drained tail", set(func(h *header) { h.head.Store(1); h.end.Store(endedBit | 1); h.drained.Store(1) }), ErrIndices},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, buf := newRingNoCheck(t, 3, 4000)
			noErr(t, r.Check(), "Check before")
			cut := c.mut(r.h, buf)
			_, err := Open(cut)
			wantErr(t, err, c.want, "Open")
			if len(cut) == len(buf) {
				wantErr(t, r.Check(), c.want, "Check")
			}
		})
	}
}

// TestOpenLiveIndices: the index check never fails on a live ring, whose tail and head
// move between Open's reads.
func TestOpenLiveIndices(t *testing.T) {
	r, buf := newRing(t, 2, 8)
	n := 20000
	if raceEnabled {
		n = 4000
	}
	done := make(chan error, 1)
	go func() {
		w, rd := r.Writer(), r.Reader()
		for range n {
			s, err := w.Reserve()
			if err == nil {
				err = w.Commit(len(s.Buf))
			}
			var it Item
			if err == nil {
				it, err = rd.Acquire()
			}
			if err == nil {
				err = rd.Release(it.Seq)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.After(30 * time.Second)
	for opened := 0; ; opened++ {
		select {
		case err := <-done:
			noErr(t, err, "producer/consumer goroutine")
			t.Logf("%d opens during %d items", opened, n)
			return
		case <-deadline:
			t.Fatal("producer/consumer goroutine did not finish within 30s")
		default:
		}
		if _, err := Open(buf); err != nil {
			t.Fatalf("Open on a live ring: %v", err) // the goroutine ends on its own
		}
	}
}

func TestWriterReaderBasics(t *testing.T) {
	r, _ := newRing(t, 3, 100)
	w, rd := r.Writer(), r.Reader()
	if _, err := rd.Acquire(); err != ErrEmpty {
		t.Fatalf("Acquire on an empty ring: %v, want ErrEmpty itself", err)
	}
	wantErr(t, w.Commit(1), ErrNotReserved, "Commit without Reserve")
	s1, err := w.Reserve()
	noErr(t, err, "Reserve")
	s2, err := w.Reserve()
	noErr(t, err, "Reserve again")
	if s1.Seq != 0 || s2.Seq != 0 || &s1.Buf[0] != &s2.Buf[0] || len(s1.Buf) != 100 || cap(s1.Buf) != 100 {
		t.Fatalf("Reserve twice: %d %d len %d cap %d", s1.Seq, s2.Seq, len(s1.Buf), cap(s1.Buf))
	}
	wantErr(t, w.Commit(101), ErrTooLarge, "Commit past the slot")
	wantErr(t, w.CommitCRC(-1, 0), ErrTooLarge, "CommitCRC negative")
	fill(s1.Buf[:100], 0)
	noErr(t, w.Commit(100), "Commit")
	commitItem(t, w, 0) // empty items are items
	commitItem(t, w, 50)
	if _, err := w.Reserve(); err != ErrFull {
		t.Fatalf("Reserve on a full ring: %v, want ErrFull itself", err)
	}
	if r.Head() != 3 || r.Tail() != 0 {
		t.Fatalf("head %d tail %d", r.Head(), r.Tail())
	}
	var its []Item
	for i := range 3 {
		it, err := rd.Acquire()
		noErr(t, err, "Acquire")
		noErr(t, rd.Verify(it), "Verify")
		if it.Seq != uint64(i) || len(it.Data) != []int{100, 0, 50}[i] || cap(it.Data) != len(it.Data) || !checkPayload(it.Data, it.Seq) {
			t.Fatalf("item %d: seq %d len %d cap %d", i, it.Seq, len(it.Data), cap(it.Data))
		}
		its = append(its, it)
	}
	if rd.Pending() != 3 || rd.Next() != 3 {
		t.Fatalf("pending %d next %d", rd.Pending(), rd.Next())
	}
	wantErr(t, rd.Release(3), ErrNotAcquired, "Release of an unacquired item")
	noErr(t, rd.Release(1), "Release 1")
	wantErr(t, rd.Release(1), ErrNotAcquired, "Release twice")
	if r.Tail() != 0 {
		t.Fatalf("tail moved over unreleased item 0: %d", r.Tail())
	}
	if _, err := w.Reserve(); err != ErrFull {
		t.Fatalf("slot 1 was handed back before slot 0: %v", err)
	}
	noErr(t, rd.Release(0), "Release 0")
	if r.Tail() != 2 {
		t.Fatalf("tail %d after releasing 0 and 1, want 2", r.Tail())
	}
	wantErr(t, rd.Release(0), ErrNotAcquired, "Release below the tail")
	if st := r.Stats(); st.Items != 2 || st.Bytes != 100 {
		t.Fatalf("stats %+v", st)
	}
	noErr(t, w.End(), "End")
	noErr(t, w.End(), "End again")
	if f, ended := r.End(); !ended || f != 3 {
		t.Fatalf("End() = %d, %v", f, ended)
	}
	wantErr(t, func() error { _, err := w.Reserve(); return err }(), ErrEnded, "Reserve after End")
	if _, err := rd.Acquire(); err != io.EOF {
		t.Fatalf("Acquire after the end: %v, want io.EOF", err)
	}
	noErr(t, rd.Release(2), "Release 2")
	if r.Tail() != 3 || rd.Pending() != 0 {
		t.Fatalf("tail %d pending %d", r.Tail(), rd.Pending())
	}
	r.SetDrained()
	if !r.Drained() {
		t.Fatal("not drained")
	}
	_ = its
}

func TestAcquireCopy(t *testing.T) {
	r, _ := newRing(t, 2, 64)
	w, rd := r.Writer(), r.Reader()
	commitItem(t, w, 64)
	_, err := rd.AcquireCopy(make([]byte, 63))
	wantErr(t, err, ErrTooLarge, "AcquireCopy into a short buffer")
	if rd.Pending() != 0 {
		t.Fatal("a failed AcquireCopy acquired the item")
	}
	dst := make([]byte, 100)
	it, err := rd.AcquireCopy(dst)
	noErr(t, err, "AcquireCopy")
	if &it.Data[0] != &dst[0] || len(it.Data) != 64 || !checkPayload(it.Data, 0) {
		t.Fatal("AcquireCopy did not copy the item into dst")
	}
	// The copy is private: scribbling on the slot afterwards does not affect it.
	r.slot(0)[0] ^= 1
	noErr(t, rd.Verify(it), "Verify of the copy after the slot changed")
	r.slot(0)[0] ^= 1
	noErr(t, rd.Release(it.Seq), "Release")

	// A scribble before the copy is caught, counted, and the item stays acquired.
	seq := commitItem(t, w, 10)
	r.slot(seq)[9] ^= 0x80
	it, err = rd.AcquireCopy(dst)
	wantErr(t, err, ErrIntegrity, "AcquireCopy of a scribbled slot")
	if it.Seq != seq || rd.Pending() != 1 || r.Stats().IntegrityErrors != 1 {
		t.Fatalf("seq %d pending %d stats %+v", it.Seq, rd.Pending(), r.Stats())
	}
	noErr(t, rd.Release(seq), "Release of the bad item")
}

// TestVerifyCatches: a payload, length or CRC changed after the commit is an
// integrity error, counted in the header.
func TestVerifyCatches(t *testing.T) {
	r, _ := newRing(t, 4, 200)
	w, rd := r.Writer(), r.Reader()
	// A wrong CRC from the caller (CommitCRC trusts it).
	s, _ := w.Reserve()
	fill(s.Buf[:20], s.Seq)
	noErr(t, w.CommitCRC(20, CRC(s.Buf[:20])^1), "CommitCRC")
	// A scribble after the commit, on any byte.
	for _, pos := range []int{0, 99, 199} {
		seq := commitItem(t, w, 200)
		r.slot(seq)[pos] ^= 0x01
	}
	for i := range 4 {
		it, err := rd.Acquire()
		noErr(t, err, "Acquire")
		err = rd.Verify(it)
		wantErr(t, err, ErrIntegrity, "Verify")
		if !strings.Contains(err.Error(), "item "+string(rune('0'+i))) {
			t.Errorf("error %q does not name item %d", err, i)
		}
		noErr(t, rd.Release(it.Seq), "Release")
	}
	if got := r.Stats().IntegrityErrors; got != 4 {
		t.Fatalf("integrity errors %d, want 4", got)
	}
}

// TestBadDescriptor: a descriptor that does not describe the next item stops the
// Reader at that item, without acquiring it, and Check reports it.
func TestBadDescriptor(t *testing.T) {
	for _, c := range []struct {
		name string
		mut  func(d *descriptor)
		want error
	}{
		{"seq", func(d *descriptor) { d.seq.Add(3) }, ErrSequence},
		{"length", func(d *descriptor) { d.length.Store(65) }, ErrCorrupt},
		{"length huge", func(d *descriptor) { d.length.Store(math.MaxUint64) }, ErrCorrupt},
		{"flags zero", func(d *descriptor) { d.flags.Store(0) }, ErrCorrupt},
		{"flags unknown", func(d *descriptor) { d.flags.Store(descCommitted | 4) }, ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := newRingNoCheck(t, 3, 64)
			w, rd := r.Writer(), r.Reader()
			commitItem(t, w, 64)
			commitItem(t, w, 64)
			c.mut(r.desc(1))
			it, err := rd.Acquire()
			noErr(t, err, "Acquire 0")
			noErr(t, rd.Release(it.Seq), "Release 0")
			for range 2 {
				_, err = rd.Acquire()
				wantErr(t, err, c.want, "Acquire of the bad item")
			}
			if rd.Next() != 1 || rd.Pending() != 0 {
				t.Fatalf("the bad item was acquired: next %d pending %d", rd.Next(), rd.Pending())
			}
			wantErr(t, r.Check(), c.want, "Check")
		})
	}
}

// TestHostileIndices: indices changed behind a Reader's or Writer's back give
// ErrIndices, never a slice out of range.
func TestHostileIndices(t *testing.T) {
	r, _ := newRingNoCheck(t, 4, 64)
	w, rd := r.Writer(), r.Reader()
	commitItem(t, w, 8)
	r.h.head.Store(100)
	_, err := rd.Acquire()
	wantErr(t, err, ErrIndices, "Acquire with head far ahead")
	r.h.head.Store(1)
	r.h.tail.Store(5)
	_, err = w.Reserve()
	wantErr(t, err, ErrIndices, "Reserve with tail past head")
	r.h.tail.Store(0)
	r.h.head.Store(0)
	_, err = rd.Acquire()
	wantErr(t, err, ErrEmpty, "Acquire with head moved back to next")
	it, err := func() (Item, error) { r.h.head.Store(1); return rd.Acquire() }()
	noErr(t, err, "Acquire after restoring head")
	noErr(t, rd.Release(it.Seq), "Release")
	r.h.head.Store(0)
	_, err = rd.Acquire()
	wantErr(t, err, ErrIndices, "Acquire with head below next")
	r.h.head.Store(1)
	r.h.end.Store(endedBit | 7)
	_, err = rd.Acquire()
	wantErr(t, err, ErrIndices, "Acquire with final != head")
	wantErr(t, w.End(), ErrIndices, "End with final != head")
	wantErr(t, r.Check(), ErrIndices, "Check")
}

// TestSecondProducer: a second Writer's commit is detected by the first (head moved),
// which publishes nothing.
func TestSecondProducer(t *testing.T) {
	r, _ := newRing(t, 4, 64)
	w1 := r.Writer()
	_, err := w1.Reserve()
	noErr(t, err, "Reserve 1")
	w2 := r.Writer()
	commitItem(t, w2, 8)
	wantErr(t, w1.Commit(8), ErrIndices, "Commit after another producer")
	_, err = w1.Reserve()
	wantErr(t, err, ErrIndices, "Reserve after another producer")
	wantErr(t, w1.End(), ErrIndices, "End after another producer")
	if r.Head() != 1 {
		t.Fatalf("head %d", r.Head())
	}
	// A zombie Writer whose slot was reserved before a successor ended the stream
	// publishes nothing.
	w3 := r.Writer()
	_, err = w3.Reserve()
	noErr(t, err, "Reserve 3")
	noErr(t, r.Writer().End(), "End by a successor")
	wantErr(t, w3.Commit(8), ErrEnded, "Commit after a successor ended the stream")
	if r.Head() != 1 {
		t.Fatalf("head %d after the zombie's commit", r.Head())
	}
	it, err := r.Reader().Acquire()
	noErr(t, err, "Acquire")
	if !checkPayload(it.Data, 0) || len(it.Data) != 8 {
		t.Fatal("item 0 is not the second producer's")
	}
}

// TestSlotAlignment: slots start on 4 KiB boundaries, or 2 MiB ones when the slot size
// is a multiple of 2 MiB, relative to the buffer start, and do not overlap.
func TestSlotAlignment(t *testing.T) {
	for _, c := range [][2]int{{3, 1}, {3, 4096}, {2, 5000}, {2, 2 << 20}, {2, 3 << 20}} {
		r, buf := newRing(t, c[0], c[1])
		align := uintptr(PageSize)
		if c[1]%HugePageSize == 0 {
			align = HugePageSize
		}
		w := r.Writer()
		rd := r.Reader()
		prevEnd := uintptr(0)
		for i := range c[0] {
			s, err := w.Reserve()
			noErr(t, err, "Reserve")
			off := uintptr(sliceAddr(s.Buf) - sliceAddr(buf))
			if off%align != 0 || off < prevEnd || len(s.Buf) != c[1] || off+uintptr(c[1]) > uintptr(r.TotalSize()) {
				t.Fatalf("%v slot %d at offset %d len %d (align %d, prev end %d)", c, i, off, len(s.Buf), align, prevEnd)
			}
			prevEnd = off + uintptr(c[1])
			noErr(t, w.Commit(0), "Commit")
			it, _ := rd.Acquire()
			noErr(t, rd.Release(it.Seq), "Release")
		}
	}
}

func TestIdentity(t *testing.T) {
	r, _ := newRing(t, 1, 1)
	p := Identity{PID: 4242, Start: 1 << 40, Gen: 7}
	c := Identity{PID: 1, Start: 2, Gen: 3}
	r.SetProducerID(p)
	r.SetConsumerID(c)
	if r.ProducerID() != p || r.ConsumerID() != c {
		t.Fatalf("got %+v %+v", r.ProducerID(), r.ConsumerID())
	}
	// A writer that died mid-write leaves the sequence odd: readers say "unknown" after
	// bounded retries, and the next writer recovers.
	r.h.producer.seq.Add(1)
	r.h.producer.pid.Store(99)
	if got := r.ProducerID(); got != (Identity{}) {
		t.Fatalf("torn identity read as %+v, want the zero Identity", got)
	}
	r.SetProducerID(p)
	if r.ProducerID() != p || r.h.producer.seq.Load()%2 != 0 {
		t.Fatalf("identity after recovery %+v, seq %d", r.ProducerID(), r.h.producer.seq.Load())
	}
}

// TestIdentityTorn: concurrent readers never see fields of two different writes.
func TestIdentityTorn(t *testing.T) {
	r, _ := newRing(t, 1, 1)
	n := 200000
	if raceEnabled {
		n = 20000
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad, seen, unknown [2]int
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := r.ConsumerID()
				switch {
				case id == Identity{}:
					unknown[g]++
				case uint64(id.PID) != id.Start || id.Start != id.Gen:
					bad[g]++
				default:
					seen[g]++
				}
			}
		}()
	}
	for i := 1; i <= n; i++ {
		r.SetConsumerID(Identity{PID: uint32(i), Start: uint64(i), Gen: uint64(i)})
	}
	close(stop)
	wg.Wait()
	if bad[0]+bad[1] != 0 {
		t.Fatalf("%d torn identities read", bad[0]+bad[1])
	}
	if got, want := r.ConsumerID(), (Identity{PID: uint32(n), Start: uint64(n), Gen: uint64(n)}); got != want {
		t.Fatalf("identity after the writes %+v, want %+v", got, want)
	}
	t.Logf("consistent reads %d, unknown %d", seen[0]+seen[1], unknown[0]+unknown[1])
}

func TestAppWordRange(t *testing.T) {
	r, _ := newRing(t, 1, 1)
	for _, i := range []int{-1, AppWords} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("AppWord(%d) did not panic", i)
				}
			}()
			r.AppWord(i)
		}()
	}
	for i := range AppWords {
		r.AppWord(i).Store(uint64(i) + 100)
	}
	for i := range AppWords {
		if r.AppWord(i).Load() != uint64(i)+100 {
			t.Fatalf("app word %d overlaps another", i)
		}
	}
	noErr(t, r.Check(), "Check after writing app words")
}

func TestErrorFormat(t *testing.T) {
	_, err := Open(make([]byte, 1000))
	var e *Error
	if !errors.As(err, &e) || e.Op != "open ring" || e.Field != "magic" || !errors.Is(err, ErrNotFormatted) {
		t.Fatalf("error %#v", err)
	}
	if got := err.Error(); got != "open ring: magic: first word is zero: ring not formatted" {
		t.Fatalf("message %q", got)
	}
	buf := make([]byte, 1000)
	copy(buf, "NOTARING")
	_, err = Open(buf)
	wantErr(t, err, ErrBadMagic, "foreign magic")
	if !strings.Contains(err.Error(), `"NOTARING"`) {
		t.Fatalf("message %q does not show the foreign magic", err)
	}
}

func TestCopyCRC(t *testing.T) {
	src := make([]byte, 2*copyChunkSrc+123)
	fill(src, 5)
	for _, n := range []int{0, 1, copyChunkDst - 1, copyChunkDst, copyChunkDst + 1, copyChunkSrc - 1, copyChunkSrc, copyChunkSrc + 1, len(src)} {
		dst := make([]byte, n)
		crc := CopyCRC(dst, src)
		if !bytes.Equal(dst, src[:n]) || crc != CRC(src[:n]) {
			t.Fatalf("CopyCRC of %d bytes: copy ok %v, crc %#x want %#x", n, bytes.Equal(dst, src[:n]), crc, CRC(src[:n]))
		}
		if got := copyCRCDst(dst, src); got != crc {
			t.Fatalf("copyCRCDst differs: %#x %#x", got, crc)
		}
		if n > 10 && UpdateCRC(CRC(src[:10]), src[10:n]) != crc {
			t.Fatal("UpdateCRC does not continue CRC")
		}
	}
	// The known CRC32C test vector (RFC 3720 B.4): 32 bytes of zeros.
	if got := CRC(make([]byte, 32)); got != 0x8a9136aa {
		t.Fatalf("CRC32C of 32 zero bytes %#x, want 0x8a9136aa", got)
	}
	// A longer dst copies only len(src).
	dst := bytes.Repeat([]byte{7}, 20)
	if CopyCRC(dst, src[:10]) != CRC(src[:10]) || dst[10] != 7 {
		t.Fatal("CopyCRC into a longer dst")
	}
}
