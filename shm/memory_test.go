package shm

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

const mib = 1 << 20

// TestHugePagesSmaps proves from /proc/self/smaps that a HugePages: On
// segment is huge-page backed (KernelPageSize 2048 kB), that pre-touch left
// all of it resident (Private/Shared_Hugetlb), that a second mapping is
// detected as huge and shares the pages, and that mlock does not apply.
func TestHugePagesSmaps(t *testing.T) {
	reserveHuge(t, 8)
	key := newKey(t)
	s := mustCreate(t, key, 5*mib, Options{HugePages: On, Lock: On, Advise: true, Pretouch: true})
	if !s.Huge() || s.Size() != 6*mib || len(s.Bytes()) != 6*mib || s.Locked() {
		t.Fatalf("huge segment: huge %v size %d len %d locked %v; want huge, 6 MiB, unlocked",
			s.Huge(), s.Size(), len(s.Bytes()), s.Locked())
	}
	if !slices.ContainsFunc(s.Notes(), func(n string) bool { return n == "mlock: not applied: huge pages are never swapped out" }) {
		t.Errorf("Lock On with huge pages: notes %q lack the mlock note", s.Notes())
	}
	e := smapsOf(t, s)
	if e.KernelPageSize != 2048<<10 || e.Size != 6*mib {
		t.Fatalf("smaps: KernelPageSize %d Size %d, want 2048 kB and 6 MiB", e.KernelPageSize, e.Size)
	}
	if e.Hugetlb() != 6*mib {
		t.Errorf("smaps after pretouch: Shared_Hugetlb %d + Private_Hugetlb %d, want all 6 MiB resident",
			e.SharedHugetlb, e.PrivateHugetlb)
	}
	if e.Locked != 0 || slices.Contains(e.VMFlags, "lo") {
		t.Errorf("smaps: Locked %d, flags %v: mlock applied to hugetlb?", e.Locked, e.VMFlags)
	}
	if !slices.Contains(e.VMFlags, "ht") {
		t.Errorf("smaps VmFlags %v lack ht (hugetlb)", e.VMFlags)
	}

	b, err := Attach(key, false, Options{Lock: Auto, Pretouch: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Detach() })
	if !b.Huge() || b.Size() != 6*mib || b.Locked() {
		t.Fatalf("Attach of a huge segment: huge %v size %d locked %v", b.Huge(), b.Size(), b.Locked())
	}
	for name, seg := range map[string]*Segment{"creator": s, "attacher": b} {
		e := smapsOf(t, seg)
		if e.KernelPageSize != 2048<<10 || e.SharedHugetlb != 6*mib {
			t.Errorf("%s mapping: KernelPageSize %d Shared_Hugetlb %d, want 2048 kB and 6 MiB shared",
				name, e.KernelPageSize, e.SharedHugetlb)
		}
	}
	copy(s.Bytes()[5*mib:], "tail")
	if string(b.Bytes()[5*mib:5*mib+4]) != "tail" {
		t.Fatal("huge mappings do not share")
	}
	in, err := s.Stat()
	if err != nil || !in.Huge || !in.HugeKnown || in.Size != 6*mib || in.Attached != 2 {
		t.Fatalf("Stat: %+v %v", in, err)
	}
	l, err := Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	if l.HugeKnown && !l.Huge {
		t.Errorf("Lookup claims a huge segment is normal: %+v", l)
	}
	t.Logf("/proc/sysvipc/shm for a resident 6 MiB huge segment: rss %d (HugeKnown %v)", l.Resident, l.HugeKnown)
}

// TestHugeFirstTouch: without pre-touch a huge segment has nothing resident
// and each first touch faults in one 2 MiB page.
func TestHugeFirstTouch(t *testing.T) {
	reserveHuge(t, 2)
	s := mustCreate(t, newKey(t), 4*mib, Options{HugePages: On, Lock: Off})
	if e := smapsOf(t, s); e.Hugetlb() != 0 {
		t.Fatalf("untouched huge segment: %d bytes resident", e.Hugetlb())
	}
	s.Bytes()[0] = 1
	if e := smapsOf(t, s); e.Hugetlb() != 2*mib {
		t.Fatalf("after one write: %d bytes resident, want one 2 MiB page", e.Hugetlb())
	}
	s.Bytes()[3*mib] = 1
	if e := smapsOf(t, s); e.Hugetlb() != 4*mib {
		t.Fatalf("after two writes: %d bytes resident, want 4 MiB", e.Hugetlb())
	}
}

// TestMlockSmaps: Lock On or Auto (as root) shows in smaps Locked: for the
// whole segment; Off does not.
func TestMlockSmaps(t *testing.T) {
	for _, p := range []Policy{On, Auto, Off} {
		s := mustCreate(t, newKey(t), 3*mib, Options{HugePages: Off, Lock: p})
		e := smapsOf(t, s)
		want := p != Off
		if os.Geteuid() != 0 && p == Auto {
			want = s.Locked() // Auto may have fallen back under RLIMIT_MEMLOCK
		}
		switch {
		case s.Locked() != want:
			t.Errorf("Lock %v: Locked() = %v, want %v (notes %q)", p, s.Locked(), want, s.Notes())
		case want && (e.Locked != 3*mib || e.Rss != 3*mib || !slices.Contains(e.VMFlags, "lo")):
			t.Errorf("Lock %v: smaps Locked %d Rss %d flags %v, want 3 MiB locked", p, e.Locked, e.Rss, e.VMFlags)
		case !want && (e.Locked != 0 || slices.Contains(e.VMFlags, "lo")):
			t.Errorf("Lock %v: smaps Locked %d flags %v, want nothing locked", p, e.Locked, e.VMFlags)
		}
		if err := s.Detach(); err != nil || s.Locked() {
			t.Errorf("Detach: %v, Locked() %v after", err, s.Locked())
		}
	}
}

// TestPretouch: both pre-touch paths (MADV_POPULATE_* and the page-stride
// fallback) leave every page resident, on normal and (as root) huge pages,
// for read-write and read-only mappings, and change no data.
func TestPretouch(t *testing.T) {
	kinds := []Policy{Off}
	if os.Geteuid() == 0 {
		reserveHuge(t, 5)
		kinds = append(kinds, On)
	}
	const size = 3*mib + 4096
	for _, hp := range kinds {
		for _, stride := range []bool{false, true} {
			name := "hugepages=" + hp.String() + "/stride=" + strconv.FormatBool(stride)
			t.Run(name, func(t *testing.T) {
				noPopulate.Store(stride)
				defer noPopulate.Store(false)
				key := newKey(t)
				cold := mustCreate(t, key, size, Options{HugePages: hp, Lock: Off})
				resident := func(s *Segment) int64 {
					e := smapsOf(t, s)
					return e.Rss + e.Hugetlb()
				}
				if r := resident(cold); r != 0 {
					t.Fatalf("without pretouch %d bytes are resident", r)
				}
				pattern := bytes.Repeat([]byte("0123456789abcdef"), cold.Size()/16)
				copy(cold.Bytes(), pattern)
				for _, ro := range []bool{false, true} {
					s, err := Attach(key, ro, Options{Lock: Off, Pretouch: true})
					if err != nil {
						t.Fatal(err)
					}
					if r := resident(s); r != int64(s.Size()+4095)/4096*4096 {
						t.Errorf("read-only %v: after pretouch %d bytes resident, want %d", ro, r, s.Size())
					}
					if !bytes.Equal(s.Bytes(), pattern[:s.Size()]) {
						t.Errorf("read-only %v: pretouch changed the data", ro)
					}
					if err := s.Detach(); err != nil {
						t.Fatal(err)
					}
				}
				for _, n := range []int{size, 2*4096 + 1} { // the second ends 1 byte into a page
					fresh := mustCreate(t, newKey(t), n, Options{HugePages: hp, Lock: Off, Pretouch: true})
					if r := resident(fresh); r != int64(fresh.Size()+4095)/4096*4096 {
						t.Errorf("Create %d bytes with Pretouch: %d bytes resident, want %d", n, r, fresh.Size())
					}
				}
			})
		}
	}
}

// TestHugeAutoFallback: with a pool that cannot hold the segment, Auto falls
// back to normal pages with a note naming the pages needed, the free pages
// and the sysctl that fixes it; On fails with the same and leaves nothing.
// The pool is held still (the flock of every shmpc pool change) meanwhile.
func TestHugeAutoFallback(t *testing.T) {
	if _, err := ReadHugePool(); err != nil {
		t.Skipf("skipping: no 2 MiB huge pages on this kernel: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: an unprivileged user gets EPERM, not the pool shortage (see TestHugePermission)")
	}
	err := withHugeLock(60*time.Second, func() error {
		pool, err := ReadHugePool()
		if err != nil {
			return err
		}
		// More than the pool could ever hold without growing.
		need := pool.Persistent() + pool.Overcommit + 1
		if int64(need)*HugePageSize > memTotal()/4 {
			t.Skipf("skipping: the pool (%+v) is too large to overflow cheaply", pool)
		}
		size := need*HugePageSize - 4096
		key := newKey(t)
		s := mustCreate(t, key, size, Options{HugePages: Auto, Lock: Off})
		if s.Huge() || s.Size() != size {
			t.Fatalf("Auto with a short pool: huge %v size %d, want normal pages, size %d", s.Huge(), s.Size(), size)
		}
		notes := s.Notes()
		if len(notes) != 1 {
			t.Fatalf("notes %q, want one", notes)
		}
		cleanupSegment(t, s)
		_, err = Create(key, size, Options{HugePages: On, Lock: Off})
		if !errors.Is(err, ErrHugePages) {
			t.Fatalf("On with a short pool: %v, want ErrHugePages", err)
		}
		if rows := ourSegments(t, key); len(rows) != 0 {
			t.Fatalf("failed On create left %+v", rows)
		}
		cmd := regexp.MustCompile(`run: sysctl -w vm\.nr_hugepages=(\d+)`)
		if !pool.Default {
			cmd = regexp.MustCompile(`run: echo (\d+) > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`)
		}
		for _, msg := range []string{notes[0], err.Error()} {
			mustContain(t, msg, "huge pages unavailable", "free 2 MiB pages", "need "+strconv.Itoa(need)+";")
			m := cmd.FindStringSubmatch(msg)
			if m == nil {
				t.Errorf("%q lacks the fix command", msg)
				continue
			}
			n, _ := strconv.Atoi(m[1])
			if n <= pool.Persistent() || n > pool.Persistent()+need {
				t.Errorf("fix sets the pool to %d; the pool has %d persistent pages and %d are needed", n, pool.Persistent(), need)
			}
		}
		mustContain(t, notes[0], "using normal pages")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHugePermission: an unprivileged user outside vm.hugetlb_shm_group gets
// EPERM from SHM_HUGETLB: On fails saying so and how to fix it, Auto falls
// back with a note.
func TestHugePermission(t *testing.T) {
	if g, err := readUint(procHugetlbGrp); err == nil && g == helperGID {
		t.Skipf("skipping: vm.hugetlb_shm_group is the helper's group %d", g)
	}
	reserveHuge(t, 1)
	key := newKey(t)
	r := runHelperProcess(t, "hugeperm", "SHM_KEY="+strconv.Itoa(key))
	if !r.Is["on/huge"] || !r.Is["on/perm"] {
		t.Errorf("On as uid %d: %q, want ErrHugePages and fs.ErrPermission", helperUID, r.Errors["on"])
	}
	mustContain(t, r.Errors["on"], "CAP_IPC_LOCK", "vm.hugetlb_shm_group", "sysctl -w vm.hugetlb_shm_group=65533")
	if r.Errors["auto"] != "" || r.Huge || len(r.Notes) != 1 {
		t.Fatalf("Auto as uid %d: err %q huge %v notes %q; want normal pages and one note", helperUID, r.Errors["auto"], r.Huge, r.Notes)
	}
	mustContain(t, r.Notes[0], "using normal pages", "vm.hugetlb_shm_group")
	if rows := ourSegments(t, key); len(rows) != 0 {
		t.Fatalf("the helper left segments: %+v", rows)
	}
}

func TestHugePoolArithmetic(t *testing.T) {
	p := HugePool{Total: 10, Free: 4, Reserved: 1, Default: true}
	if p.Available() != 3 || p.Persistent() != 10 {
		t.Fatalf("%+v: available %d persistent %d", p, p.Available(), p.Persistent())
	}
	if got := p.FixCommand(5); got != "sysctl -w vm.nr_hugepages=12" {
		t.Errorf("FixCommand(5) = %q", got)
	}
	if got := p.FixCommand(2); got != "sysctl -w vm.nr_hugepages=10" {
		t.Errorf("FixCommand(2) with room = %q", got)
	}
	p = HugePool{Total: 10, Free: 0, Surplus: 2, Overcommit: 3}
	if p.Available() != 1 || p.Persistent() != 8 {
		t.Fatalf("%+v: available %d persistent %d", p, p.Available(), p.Persistent())
	}
	if got := p.FixCommand(4); got != "echo 11 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" {
		t.Errorf("FixCommand(4), not the default size = %q", got)
	}
	if (HugePool{Free: 1, Reserved: 3}).Available() != 0 {
		t.Error("Available is negative")
	}
}

func TestReadHugePoolFixture(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"nr_hugepages": "7", "free_hugepages": "5", "resv_hugepages": "2",
		"surplus_hugepages": "1", "nr_overcommit_hugepages": "4"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := sysHugepages2M
	sysHugepages2M = dir
	defer func() { sysHugepages2M = old }()
	p, err := ReadHugePool()
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 7 || p.Free != 5 || p.Reserved != 2 || p.Surplus != 1 || p.Overcommit != 4 || p.Available() != 6 {
		t.Fatalf("ReadHugePool = %+v (available %d)", p, p.Available())
	}
	sysHugepages2M = filepath.Join(dir, "missing")
	if _, err := ReadHugePool(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadHugePool without the pool: %v, want fs.ErrNotExist", err)
	}
}

func TestReserveHugePages(t *testing.T) {
	if _, err := ReserveHugePages(0, time.Second); !errors.Is(err, ErrSize) {
		t.Errorf("ReserveHugePages(0): %v, want ErrSize", err)
	}
	reserveHuge(t, 1) // skips unless root with a 2 MiB pool
	r, err := ReserveHugePages(2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pages < 2 {
		t.Errorf("reserved %d pages, want at least 2", r.Pages)
	}
	// The pages are usable: a 4 MiB On segment fits even if only these exist.
	s := mustCreate(t, newKey(t), 4*mib, Options{HugePages: On, Lock: Off})
	cleanupSegment(t, s)
	for range 2 {
		if err := r.Release(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPageSizeSources: PROCMAP_QUERY (where the kernel has it) and smaps
// agree on a normal mapping's page size.
func TestPageSizeSources(t *testing.T) {
	s := mustCreate(t, newKey(t), 64<<10, noMemOpts)
	e := smapsOf(t, s)
	if e.KernelPageSize != int64(os.Getpagesize()) || e.Size != 64<<10 || e.Start != addrOf(s.Bytes()) {
		t.Fatalf("smaps entry %+v", e)
	}
	q, err := vmaPageSizeQuery(addrOf(s.Bytes()))
	if err != nil {
		t.Logf("PROCMAP_QUERY unavailable (Linux < 6.11?): %v", err)
	} else if q != e.KernelPageSize {
		t.Fatalf("PROCMAP_QUERY page size %d, smaps %d", q, e.KernelPageSize)
	}
	if _, err := readSmaps(1); err == nil {
		t.Fatal("readSmaps found a mapping at address 1")
	}
}
