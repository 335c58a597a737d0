package ring

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fuzzBufSize is the buffer FuzzOpen lays its input over: large enough for small rings,
// so short inputs (a header and descriptors) get past the geometry checks.
const fuzzBufSize = 64 << 10

// maxOps bounds the operations one fuzz input runs.
const maxOps = 512

// sentinels are the errors every failure of the package must match one of.
var sentinels = []error{ErrNotFormatted, ErrBadMagic, ErrVersion, ErrGeometry, ErrConfig, ErrIndices, ErrCorrupt,
	ErrFull, ErrEmpty, ErrEnded, ErrIntegrity, ErrSequence, ErrTooLarge, ErrNotReserved, ErrNotAcquired, io.EOF}

func knownError(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// exercise runs the operations encoded in ops on r, whose shared memory may be
// arbitrary and may be changed between operations by op "poke". It fails on a panic
// (the fuzzer reports it), on an error matching no sentinel, and on a broken guarantee
// that holds whatever the shared memory says: an acquired item is within its slot,
// sequence numbers come in order, and releasing an acquired item succeeds.
func exercise(tb testing.TB, r *Ring, buf []byte, ops []byte) {
	tb.Helper()
	if len(ops) > maxOps {
		ops = ops[:maxOps]
	}
	check := func(err error, what string) {
		tb.Helper()
		if err != nil && !knownError(err) {
			tb.Fatalf("%s: error matching no sentinel: %v", what, err)
		}
	}
	w, rd := r.Writer(), r.Reader()
	var held []Item
	next := rd.Next()
	dst := make([]byte, r.SlotSize())
	words := wordsOf(buf[:min(len(buf), r.TotalSize())])
	arg := func(i *int) byte {
		*i++
		if *i < len(ops) {
			return ops[*i]
		}
		return 0
	}
	for i := 0; i < len(ops); i++ {
		switch ops[i] % 12 {
		case 0, 1:
			var it Item
			var err error
			if ops[i]%12 == 0 {
				it, err = rd.Acquire()
			} else {
				it, err = rd.AcquireCopy(dst)
			}
			check(err, "Acquire")
			if err == nil || errors.Is(err, ErrIntegrity) {
				if it.Seq != next || len(it.Data) > r.SlotSize() || cap(it.Data) > r.SlotSize() {
					tb.Fatalf("Acquire: item %d (want %d) with %d bytes, cap %d, slot size %d", it.Seq, next, len(it.Data), cap(it.Data), r.SlotSize())
				}
				next++
				held = append(held, it)
			}
		case 2:
			if len(held) == 0 {
				continue
			}
			k := int(arg(&i)) % len(held)
			check(rd.Verify(held[k]), "Verify")
			if err := rd.Release(held[k].Seq); err != nil {
				tb.Fatalf("Release of acquired item %d: %v", held[k].Seq, err)
			}
			held = append(held[:k], held[k+1:]...)
		case 3:
			seq := uint64(arg(&i))
			err := rd.Release(seq)
			check(err, "Release of any")
			if err == nil {
				k := slices.IndexFunc(held, func(it Item) bool { return it.Seq == seq })
				if k < 0 {
					tb.Fatalf("Release of item %d, never acquired, succeeded", seq)
				}
				held = slices.Delete(held, k, k+1)
			}
		case 4, 5: // reserve and write; 4 also commits
			commit := ops[i]%12 == 4
			s, err := w.Reserve()
			check(err, "Reserve")
			if err == nil {
				if len(s.Buf) != r.SlotSize() {
					tb.Fatalf("Reserve: slot of %d bytes", len(s.Buf))
				}
				n := int(arg(&i)) % (r.SlotSize() + 1)
				fill(s.Buf[:n], s.Seq)
				if commit {
					check(w.Commit(n), "Commit")
				}
			}
		case 6:
			check(w.End(), "End")
		case 7:
			rd, held = r.Reader(), nil
			next = rd.Next()
		case 8:
			w = r.Writer()
		case 9: // poke: another process writes a word of the header or descriptors
			if len(words) == 0 {
				continue
			}
			idx := (int(arg(&i)) | int(arg(&i))<<8) % min(len(words), int(uint64(headerSize)+uint64(r.Slots())*descriptorSize)/8)
			var v [8]byte
			for j := range v {
				v[j] = arg(&i)
			}
			words[idx].Store(binary.LittleEndian.Uint64(v[:]))
		case 10:
			_ = r.Check()
			if o, err := Open(buf); err == nil {
				_ = o.Check()
			} else {
				check(err, "Open")
			}
		case 11:
			_, _ = r.End()
			_ = r.Stats()
			_ = r.Counters()
			_ = r.ProducerID()
			_ = r.ConsumerID()
			_ = rd.Pending()
			a := arg(&i)
			if a%4 == 0 {
				r.SetDrained()
			}
			switch a / 4 % 3 { // a side counts a lost peer
			case 1:
				r.ProducerLostConsumer()
			case 2:
				r.ConsumerLostProducer()
			}
		}
	}
	_ = r.Check()
}

// allOps is a script that runs every operation a few times, for FuzzOpen.
var allOps = []byte{10, 11, 1, 0, 0, 2, 0, 4, 50, 4, 3, 0, 1, 2, 1, 2, 0, 3, 7, 7, 0, 1, 0, 2, 2, 5, 9, 6, 0, 0, 8, 4, 1, 6, 1, 0, 2, 0, 10}

// FuzzOpen: Open on arbitrary bytes errors or succeeds, never panics; a ring it accepts
// has a geometry within the buffer and survives every operation.
func FuzzOpen(f *testing.F) {
	for _, s := range openSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		buf := make([]byte, fuzzBufSize)
		copy(buf, data)
		r, err := Open(buf)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || !knownError(err) {
				t.Fatalf("Open: error of type %T matching no sentinel: %v", err, err)
			}
			return
		}
		if r.TotalSize() > len(buf) || r.Slots() < 1 || r.SlotSize() < 1 || len(r.Name()) < 1 || len(r.Name()) > MaxNameLen {
			t.Fatalf("Open accepted geometry %d slots of %d bytes, total %d, name %q", r.Slots(), r.SlotSize(), r.TotalSize(), r.Name())
		}
		exercise(t, r, buf, allOps)
	})
}

// FuzzAcquire: a valid ring whose indices, stream state and descriptors are arbitrary,
// driven by arbitrary operations (including pokes of shared words between them).
func FuzzAcquire(f *testing.F) {
	for _, s := range acquireSeeds(f) {
		f.Add(s.head, s.tail, s.end, s.drained, s.descs, s.ops)
	}
	f.Fuzz(func(t *testing.T, head, tail, end, drained uint64, descs, ops []byte) {
		r, buf := acquireRing(t)
		h := r.h
		h.head.Store(head)
		h.tail.Store(tail)
		h.end.Store(end)
		h.drained.Store(drained)
		d := buf[uint64(headerSize) : uint64(headerSize)+uint64(r.Slots())*descriptorSize]
		copy(d, descs)
		if _, err := Open(buf); err != nil && !knownError(err) {
			t.Fatalf("Open: %v", err)
		}
		exercise(t, r, buf, ops)
	})
}

// acquireRing is FuzzAcquire's ring: 4 slots of 100 bytes, 6 items committed, 2
// released (so the descriptors are realistic before the fuzzer overwrites them).
func acquireRing(tb testing.TB) (*Ring, []byte) {
	tb.Helper()
	n, _ := Size(4, 100)
	buf := make([]byte, n)
	r, err := Format(buf, Config{Name: "fuzz", Slots: 4, SlotSize: 100})
	noErr(tb, err, "Format")
	w, rd := r.Writer(), r.Reader()
	for i := range 6 {
		if i >= 4 {
			it, err := rd.Acquire()
			noErr(tb, err, "Acquire")
			noErr(tb, rd.Release(it.Seq), "Release")
		}
		commitItem(tb, w, 10*i)
	}
	return r, buf
}

type acquireSeed struct {
	head, tail, end, drained uint64
	descs, ops               []byte
}

// descImage returns the descriptor bytes of r.
func descImage(r *Ring, buf []byte) []byte {
	return append([]byte(nil), buf[uint64(headerSize):uint64(headerSize)+uint64(r.Slots())*descriptorSize]...)
}

// acquireSeeds: the realistic state, the ended and drained states, and broken ones.
func acquireSeeds(tb testing.TB) []acquireSeed {
	tb.Helper()
	r, buf := acquireRing(tb)
	d := descImage(r, buf)
	bad := append([]byte(nil), d...)
	bad[0] ^= 1
	long := append([]byte(nil), d...)
	binary.LittleEndian.PutUint64(long[64+8:], 1<<40)
	ops := []byte{0, 2, 0, 1, 2, 0, 2, 0, 4, 30, 4, 99, 0, 0, 6, 0, 2, 0, 2, 0, 11, 0, 10, 7, 0, 1, 3, 5, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10}
	return []acquireSeed{
		{6, 2, 0, 0, d, ops},
		{6, 2, endedBit | 6, 0, d, ops},
		{6, 6, endedBit | 6, 1, d, ops},
		{6, 2, 0, 0, bad, ops},
		{6, 2, 0, 0, long, ops},
		{100, 2, 0, 0, d, ops},
		{1, 2, 0, 0, d, ops},
		{^uint64(0), 2, endedBit | 5, 3, nil, ops},
		{6, 2, 0, 0, d, []byte{9, 80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 10}}, // poke head
	}
}

// openSeeds: header and descriptor images of rings in several states, and near misses.
func openSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	image := func(r *Ring, buf []byte) []byte {
		return append([]byte(nil), buf[:uint64(headerSize)+uint64(r.Slots())*descriptorSize]...)
	}
	for _, g := range [][2]int{{1, 1}, {3, 100}, {8, 4096}, {2, 8000}} {
		n, _ := Size(g[0], g[1])
		buf := make([]byte, n)
		r, err := Format(buf, Config{Name: "seed", Slots: g[0], SlotSize: g[1], Flags: FlagHuge, StreamItems: 10})
		noErr(tb, err, "Format")
		seeds = append(seeds, image(r, buf))
		w, rd := r.Writer(), r.Reader()
		for i := range g[0] + 1 {
			if i >= g[0] {
				it, _ := rd.Acquire()
				noErr(tb, rd.Release(it.Seq), "Release")
			}
			commitItem(tb, w, min(i*17, g[1]))
		}
		seeds = append(seeds, image(r, buf))
		noErr(tb, w.End(), "End")
		seeds = append(seeds, image(r, buf))
	}
	last := seeds[len(seeds)-1]
	seeds = append(seeds, nil, []byte(Magic), last[:100])
	v := append([]byte(nil), last...)
	v[8] = 2 // version
	seeds = append(seeds, v)
	return seeds
}

// TestFuzzSeedCorpus keeps testdata/fuzz/<Target>/ in step with the seeds above (they
// run as part of every go test; -update rewrites them).
func TestFuzzSeedCorpus(t *testing.T) {
	type file struct {
		target, name string
		args         []any
	}
	var files []file
	for i, s := range openSeeds(t) {
		files = append(files, file{"FuzzOpen", "seed" + string(rune('a'+i)), []any{s}})
	}
	for i, s := range acquireSeeds(t) {
		files = append(files, file{"FuzzAcquire", "seed" + string(rune('a'+i)), []any{s.head, s.tail, s.end, s.drained, s.descs, s.ops}})
	}
	for _, f := range files {
		if *update {
			seedFile(t, f.target, f.name, f.args...)
		}
		got, err := os.ReadFile(filepath.Join("testdata", "fuzz", f.target, f.name))
		if err != nil {
			t.Errorf("seed corpus file missing (run with -update): %v", err)
			continue
		}
		// The file must hold exactly the seed the code builds, so a seed
		// that changed (a new layout, a new case) cannot leave the fuzz
		// target running on stale inputs.
		if want := seedText(t, f.args...); string(got) != want {
			t.Errorf("seed corpus file %s/%s differs from the seed it should hold (run with -update)", f.target, f.name)
		}
	}
}
