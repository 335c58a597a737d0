package shm

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// model of one segment: what the kernel should report and hold.
type modelSeg struct {
	key, id, size int
	huge          bool
	perm          os.FileMode
	removed       bool // IPC_RMID done: key 0, destroyed at the last detach
	gone          bool // destroyed
	data          []byte
	maps          []*modelMap
	handle        *Segment // the Create handle, for Remove (possibly detached)
}

type modelMap struct {
	seg *modelSeg
	s   *Segment
	ro  bool
}

type segMachine struct {
	segs      []*modelSeg
	maps      []*modelMap
	keys      []int
	hugeOn    bool // HugePages: On may be drawn (the test reserved a pool)
	lockOn    bool // Lock: On may be drawn (root: no RLIMIT_MEMLOCK)
	allowHuge bool
}

func (m *segMachine) live() []*modelSeg {
	return slices.DeleteFunc(slices.Clone(m.segs), func(s *modelSeg) bool { return s.gone })
}

func (m *segMachine) create(t *rapid.T) {
	if len(m.live()) >= 4 {
		t.Skip("enough segments")
	}
	size := rapid.OneOf(rapid.IntRange(1, 64<<10), rapid.IntRange(1, 3*mib)).Draw(t, "size")
	policies := []Policy{Off, Auto}
	if m.hugeOn {
		policies = append(policies, On)
	}
	hp := rapid.SampledFrom(policies).Draw(t, "hugepages")
	locks := []Policy{Off, Auto}
	if m.lockOn {
		locks = append(locks, On)
	}
	opt := Options{
		HugePages: hp,
		Lock:      rapid.SampledFrom(locks).Draw(t, "lock"),
		Advise:    rapid.Bool().Draw(t, "advise"),
		Pretouch:  rapid.Bool().Draw(t, "pretouch"),
		Perm:      rapid.SampledFrom([]os.FileMode{0, 0o600, 0o640, 0o660}).Draw(t, "perm"),
	}
	key, err := allocKey()
	if err != nil {
		t.Fatal(err)
	}
	m.keys = append(m.keys, key)
	s, err := Create(key, size, opt)
	if hp == On && errors.Is(err, ErrHugePages) {
		// Another package may have taken the pages; On must then fail and
		// leave nothing.
		if rows := ourSegments(t, key); len(rows) != 0 {
			t.Fatalf("failed On create left %+v", rows)
		}
		return
	}
	if err != nil {
		t.Fatalf("Create(%d, %+v): %v", size, opt, err)
	}
	registerID(s.ID())
	want := size
	if s.Huge() {
		want = (size + HugePageSize - 1) / HugePageSize * HugePageSize
	}
	switch {
	case hp == Off && s.Huge(), hp == On && !s.Huge():
		t.Fatalf("HugePages %v gave huge=%v", hp, s.Huge())
	case hp == Auto && !s.Huge() && !slices.ContainsFunc(s.Notes(), func(n string) bool { return strings.Contains(n, "huge pages") }):
		t.Fatalf("Auto fell back to normal pages without a note: %q", s.Notes())
	case !m.allowHuge && s.Huge():
		t.Fatalf("got huge pages without a pool")
	case s.Size() != want || len(s.Bytes()) != want:
		t.Fatalf("size %d len %d, want %d", s.Size(), len(s.Bytes()), want)
	case s.Locked() != (opt.Lock != Off && !s.Huge() && (m.lockOn || s.Locked())):
		t.Fatalf("Lock %v huge %v: Locked() = %v", opt.Lock, s.Huge(), s.Locked())
	case !bytes.Equal(s.Bytes(), make([]byte, want)):
		t.Fatalf("new segment is not zero")
	}
	perm := opt.Perm
	if perm == 0 {
		perm = 0o600
	}
	seg := &modelSeg{key: key, id: s.ID(), size: want, huge: s.Huge(), perm: perm, data: make([]byte, want), handle: s}
	mp := &modelMap{seg: seg, s: s}
	seg.maps = append(seg.maps, mp)
	m.segs = append(m.segs, seg)
	m.maps = append(m.maps, mp)
}

func (m *segMachine) attach(t *rapid.T) {
	live := m.live()
	if len(live) == 0 {
		t.Skip("no segment")
	}
	seg := rapid.SampledFrom(live).Draw(t, "seg")
	byID := rapid.Bool().Draw(t, "byID")
	ro := rapid.Bool().Draw(t, "readOnly")
	opt := Options{Lock: Off, Pretouch: rapid.Bool().Draw(t, "pretouch"), Advise: rapid.Bool().Draw(t, "advise")}
	var s *Segment
	var err error
	if byID {
		s, err = AttachID(seg.id, ro, opt)
	} else {
		s, err = Attach(seg.key, ro, opt)
		if seg.removed {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Attach by key after Remove: %v, want fs.ErrNotExist", err)
			}
			return
		}
	}
	if err != nil {
		t.Fatalf("attach %+v: %v", seg, err)
	}
	if s.ID() != seg.id || s.Size() != seg.size || s.Huge() != seg.huge || s.ReadOnly() != ro {
		t.Fatalf("attached id %d size %d huge %v ro %v, model %+v", s.ID(), s.Size(), s.Huge(), s.ReadOnly(), seg)
	}
	if !bytes.Equal(s.Bytes(), seg.data) {
		t.Fatal("new attachment does not see the data")
	}
	mp := &modelMap{seg: seg, s: s, ro: ro}
	seg.maps = append(seg.maps, mp)
	m.maps = append(m.maps, mp)
}

func (m *segMachine) write(t *rapid.T) {
	rw := slices.DeleteFunc(slices.Clone(m.maps), func(mp *modelMap) bool { return mp.ro })
	if len(rw) == 0 {
		t.Skip("no writable mapping")
	}
	mp := rapid.SampledFrom(rw).Draw(t, "mapping")
	off := rapid.IntRange(0, mp.seg.size-1).Draw(t, "offset")
	n := rapid.IntRange(1, min(4096, mp.seg.size-off)).Draw(t, "length")
	v := rapid.Byte().Draw(t, "value")
	b := mp.s.Bytes()
	for i := off; i < off+n; i++ {
		b[i] = v + byte(i)
		mp.seg.data[i] = v + byte(i)
	}
}

func (m *segMachine) read(t *rapid.T) {
	if len(m.maps) == 0 {
		t.Skip("no mapping")
	}
	mp := rapid.SampledFrom(m.maps).Draw(t, "mapping")
	if !bytes.Equal(mp.s.Bytes(), mp.seg.data) {
		i := 0
		for b := mp.s.Bytes(); b[i] == mp.seg.data[i]; i++ {
		}
		t.Fatalf("mapping of segment %d differs from the model at offset %d", mp.seg.id, i)
	}
}

func (m *segMachine) detach(t *rapid.T) {
	if len(m.maps) == 0 {
		t.Skip("no mapping")
	}
	mp := rapid.SampledFrom(m.maps).Draw(t, "mapping")
	for range 2 {
		if err := mp.s.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	if mp.s.Bytes() != nil || mp.s.Locked() {
		t.Fatal("Bytes or Locked after Detach")
	}
	if _, err := mp.s.Stat(); !errors.Is(err, ErrDetached) {
		t.Fatalf("Stat after Detach: %v", err)
	}
	m.maps = slices.DeleteFunc(m.maps, func(x *modelMap) bool { return x == mp })
	seg := mp.seg
	seg.maps = slices.DeleteFunc(seg.maps, func(x *modelMap) bool { return x == mp })
	if seg.removed && len(seg.maps) == 0 {
		seg.gone = true
	}
}

func (m *segMachine) remove(t *rapid.T) {
	cands := slices.DeleteFunc(m.live(), func(s *modelSeg) bool { return s.removed })
	if len(cands) == 0 {
		t.Skip("nothing to remove")
	}
	seg := rapid.SampledFrom(cands).Draw(t, "seg")
	if rapid.Bool().Draw(t, "byID") {
		if err := RemoveID(seg.id); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := seg.handle.Remove(); err != nil {
			t.Fatal(err)
		}
		if err := seg.handle.Remove(); !errors.Is(err, ErrRemoved) {
			t.Fatalf("second Remove: %v, want ErrRemoved", err)
		}
	}
	seg.removed = true
	seg.gone = len(seg.maps) == 0
}

// check compares the kernel's view with the model.
func (m *segMachine) check(t *rapid.T) {
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int]Info{}
	for _, in := range all {
		byID[in.ID] = in
	}
	for _, seg := range m.segs {
		in, ok := byID[seg.id]
		if seg.gone {
			if ok && in.CreatorPID == os.Getpid() {
				t.Fatalf("segment %d should be destroyed: %+v", seg.id, in)
			}
			if _, err := Lookup(seg.key); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Lookup of a destroyed segment's key: %v", err)
			}
			continue
		}
		wantKey := seg.key
		if seg.removed {
			wantKey = 0
		}
		switch {
		case !ok:
			t.Fatalf("segment %d missing from List", seg.id)
		case in.Key != wantKey || in.Size != int64(seg.size) || in.Attached != len(seg.maps) ||
			in.Removed != seg.removed || in.Mode != seg.perm || in.CreatorPID != os.Getpid():
			t.Fatalf("List says key %#x size %d attached %d removed %v mode %v creator %d; the model: key %#x size %d mappings %d removed %v perm %v, our pid %d (segment id %d)",
				in.Key, in.Size, in.Attached, in.Removed, in.Mode, in.CreatorPID,
				wantKey, seg.size, len(seg.maps), seg.removed, seg.perm, os.Getpid(), seg.id)
		case in.HugeKnown && in.Huge != seg.huge:
			t.Fatalf("List infers huge=%v for a huge=%v segment: %+v", in.Huge, seg.huge, in)
		}
	}
	for _, mp := range m.maps {
		if len(mp.s.Bytes()) != mp.seg.size {
			t.Fatalf("mapping of %d has length %d", mp.seg.id, len(mp.s.Bytes()))
		}
	}
}

// teardown detaches and removes everything; it runs as cleanup too, so it
// tolerates what is already done.
func (m *segMachine) teardown() error {
	var errs []error
	for _, mp := range m.maps {
		errs = append(errs, mp.s.Detach())
	}
	m.maps = nil
	for _, seg := range m.segs {
		if !seg.removed {
			if err := seg.handle.Remove(); err != nil && !errors.Is(err, ErrRemoved) {
				errs = append(errs, err)
			}
			seg.removed = true
		}
		seg.maps, seg.gone = nil, true
	}
	for _, k := range m.keys {
		errs = append(errs, removeKeyIfOurs(k))
	}
	return errors.Join(errs...)
}

// TestSegmentStateMachine: random sequences of create (random sizes and
// option sets), attach (by key or id, read-write or read-only), write
// through one mapping, read through the others, detach and remove, checked
// against a model after every step; afterwards no segment with the test's
// keys remains.
func TestSegmentStateMachine(t *testing.T) {
	m0 := segMachine{lockOn: os.Geteuid() == 0}
	if os.Geteuid() == 0 {
		if r, err := ReserveHugePages(8, 0); err == nil {
			// Reserved directly (not reserveHuge) so that a busy lock
			// only costs the huge-page variety, never skips the test.
			t.Cleanup(func() {
				if err := r.Release(30e9); err != nil {
					t.Error(err)
				}
			})
			m0.hugeOn = true
		} else {
			t.Logf("no huge pages for the property test: %v", err)
		}
	}
	if p, err := ReadHugePool(); err == nil && (p.Total > 0 || p.Overcommit > 0) {
		m0.allowHuge = true
	}
	var allKeys []int
	rapid.Check(t, func(t *rapid.T) {
		m := m0
		t.Cleanup(func() { _ = m.teardown() })
		t.Repeat(map[string]func(*rapid.T){
			"create": m.create,
			"attach": m.attach,
			"write":  m.write,
			"read":   m.read,
			"detach": m.detach,
			"remove": m.remove,
			"":       m.check,
		})
		if err := m.teardown(); err != nil {
			t.Fatal(err)
		}
		allKeys = append(allKeys, m.keys...)
		if rows := ourSegments(t, m.keys...); len(rows) != 0 {
			t.Fatalf("after teardown our keys still have segments: %+v", rows)
		}
		for _, seg := range m.segs {
			if in, err := StatID(seg.id); err == nil && in.CreatorPID == os.Getpid() {
				t.Fatalf("segment %d survived: %+v", seg.id, in)
			}
		}
	})
	if rows := ourSegments(t, allKeys...); len(rows) != 0 {
		t.Fatalf("segments left: %+v", rows)
	}
	t.Logf("%d keys used", len(allKeys))
}
