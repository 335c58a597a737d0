package ring

import (
	"fmt"
	"io"
	"testing"
)

// TestCrashAtEveryCommitStep stops a producer before each shared-memory write of a
// commit (and, before that, after writing none, half or all of the payload), as a
// producer killed at that instruction would. A consumer that then opens the buffer
// delivers every item committed before and never the partial one; a resumed producer
// then completes the stream and every item is delivered exactly once, intact.
//
// The crash slot is chosen to hold an older, released item, so a partial write lands
// on real old data, and the ring is run both with a waiting consumer and with a full
// ring released during recovery.
func TestCrashAtEveryCommitStep(t *testing.T) {
	const total = 12
	for _, slots := range []int{1, 3} {
		for _, crashSeq := range []uint64{0, 4, 5} {
			for step := range commitSteps {
				for _, payload := range []string{"none", "half", "all"} {
					name := fmt.Sprintf("slots=%d/seq=%d/step=%d/payload=%s", slots, crashSeq, step, payload)
					t.Run(name, func(t *testing.T) { crashOnce(t, slots, total, crashSeq, step, payload) })
				}
			}
		}
	}
}

func crashOnce(t *testing.T, slots, total int, crashSeq uint64, step int, payload string) {
	const slotSize = 96
	lenOf := func(seq uint64) int { return int(seq*37%slotSize) + 1 }
	r, buf := newRing(t, slots, slotSize)

	// Consumer 1 and producer 1 run up to the crash item.
	w, rd := r.Writer(), r.Reader()
	delivered := map[uint64]int{}
	consume := func(rd *Reader, until uint64) {
		t.Helper()
		for rd.Next() < until {
			it, err := rd.Acquire()
			noErr(t, err, "Acquire")
			noErr(t, rd.Verify(it), "Verify")
			if len(it.Data) != lenOf(it.Seq) || !checkPayload(it.Data, it.Seq) {
				t.Fatalf("item %d: %d bytes, want %d, payload ok %v", it.Seq, len(it.Data), lenOf(it.Seq), checkPayload(it.Data, it.Seq))
			}
			delivered[it.Seq]++
			noErr(t, rd.Release(it.Seq), "Release")
		}
	}
	for seq := uint64(0); seq < crashSeq; seq++ {
		if seq >= uint64(slots) {
			consume(rd, seq-uint64(slots)+1)
		}
		commitItem(t, w, lenOf(seq))
	}
	consume(rd, crashSeq) // the crash slot now holds a released item (or nothing)

	// Producer 1 dies in the middle of committing crashSeq.
	s, err := w.Reserve()
	noErr(t, err, "Reserve of the crash item")
	n := lenOf(crashSeq)
	switch payload {
	case "half":
		fill(s.Buf[:n/2], crashSeq)
	case "all":
		fill(s.Buf[:n], crashSeq)
	}
	if err := w.commit(n, CRC(s.Buf[:n]), step); err != errCrashed {
		t.Fatalf("commit stopped before step %d: %v", step, err)
	}

	// A consumer process opens the buffer: nothing new is visible.
	r2, err := Open(buf)
	noErr(t, err, "Open after the crash")
	noErr(t, r2.Check(), "Check after the crash")
	if r2.Head() != crashSeq {
		t.Fatalf("head %d after a crash before publishing %d", r2.Head(), crashSeq)
	}
	for _, rdx := range []*Reader{rd, r2.Reader()} {
		if _, err := rdx.Acquire(); err != ErrEmpty {
			t.Fatalf("Acquire after the crash: %v, want ErrEmpty", err)
		}
	}

	// Producer 2 resumes at head and completes the stream; consumer 2 takes over.
	r3, err := Open(buf)
	noErr(t, err, "Open by the resumed producer")
	w2 := r3.Writer()
	rd2 := r2.Reader()
	for seq := crashSeq; seq < uint64(total); seq++ {
		for {
			s, err := w2.Reserve()
			if err == ErrFull {
				consume(rd2, rd2.Next()+1)
				continue
			}
			noErr(t, err, "Reserve")
			if s.Seq != seq {
				t.Fatalf("resumed producer at %d, want %d", s.Seq, seq)
			}
			fill(s.Buf[:lenOf(seq)], seq)
			noErr(t, w2.Commit(lenOf(seq)), "Commit")
			break
		}
	}
	noErr(t, w2.End(), "End")
	consume(rd2, uint64(total))
	if _, err := rd2.Acquire(); err != io.EOF {
		t.Fatalf("Acquire after the last item: %v, want io.EOF", err)
	}
	r2.SetDrained()
	for seq := range uint64(total) {
		if delivered[seq] != 1 {
			t.Fatalf("item %d delivered %d times", seq, delivered[seq])
		}
	}
	if st := r.Stats(); st.Items != uint64(total) || st.IntegrityErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCrashConsumerTakeover: a consumer killed with items acquired and some released
// out of order leaves the tail at the first unreleased item; the takeover consumer
// delivers exactly those at or above the tail again (at-least-once, at most slots
// redelivered), nothing is lost.
func TestCrashConsumerTakeover(t *testing.T) {
	const slots = 5
	r, buf := newRing(t, slots, 32)
	w := r.Writer()
	for range slots {
		commitItem(t, w, 32)
	}
	rd := r.Reader()
	for range 4 {
		_, err := rd.Acquire()
		noErr(t, err, "Acquire")
	}
	noErr(t, rd.Release(0), "Release 0")
	noErr(t, rd.Release(2), "Release 2") // gap at 1
	noErr(t, rd.Release(3), "Release 3")
	// The consumer dies here.
	r2, err := Open(buf)
	noErr(t, err, "Open by the takeover consumer")
	rd2 := r2.Reader()
	var got []uint64
	for {
		it, err := rd2.Acquire()
		if err == ErrEmpty {
			break
		}
		noErr(t, err, "Acquire")
		noErr(t, rd2.Verify(it), "Verify")
		got = append(got, it.Seq)
		noErr(t, rd2.Release(it.Seq), "Release")
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("takeover delivered %v, want [1 2 3 4]", got)
	}
	// Items 2 and 3 were released twice (once by each consumer) and are counted twice.
	if st := r2.Stats(); st.Items != 1+2+4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCrashDuringFormat reformats a buffer that holds a used ring (another geometry,
// items, an ended stream) and stops before each stage of Format: before the first, the
// old ring is intact; after it, Open says ErrNotFormatted (never a mix of old and new
// header); a complete Format then gives the new ring.
func TestCrashDuringFormat(t *testing.T) {
	for stop := range formatSteps {
		t.Run(fmt.Sprintf("stop=%d", stop), func(t *testing.T) {
			old, buf := newRingNoCheck(t, 4, 8000)
			w, rd := old.Writer(), old.Reader()
			for range 3 {
				commitItem(t, w, 100)
			}
			it, err := rd.Acquire()
			noErr(t, err, "Acquire")
			noErr(t, rd.Release(it.Seq), "Release")
			noErr(t, w.End(), "End")
			oldName := old.Name()

			cfg := Config{Name: "new", Slots: 8, SlotSize: 3000} // same total size, other geometry
			if _, err := format(buf, cfg, stop); err != errCrashed {
				t.Fatalf("format stopped at %d: %v", stop, err)
			}
			r, err := Open(buf)
			if stop == 0 {
				noErr(t, err, "Open before Format changed anything")
				if r.Name() != oldName || r.Head() != 3 {
					t.Fatalf("old ring changed: %q head %d", r.Name(), r.Head())
				}
			} else {
				wantErr(t, err, ErrNotFormatted, "Open of a half-formatted buffer")
			}
			r, err = Format(buf, cfg)
			noErr(t, err, "Format")
			noErr(t, r.Check(), "Check")
			o, err := Open(buf)
			noErr(t, err, "Open")
			if o.Name() != "new" || o.Slots() != 8 || o.Head() != 0 || o.Tail() != 0 || o.Stats() != (Stats{}) {
				t.Fatalf("reformatted ring: %q %d slots head %d tail %d", o.Name(), o.Slots(), o.Head(), o.Tail())
			}
			if _, ended := o.End(); ended {
				t.Fatal("reformatted ring still ended")
			}
		})
	}
}
