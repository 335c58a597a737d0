package shm

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sysvFixture = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
1592590380          0   600               3145728  5044  5044      1     0     0     0     0 1795727442          0 1795727442                     0                     0
         0          1  3600               3145728  5044  5044      1  1000  1000     0     0 1795727442          0 1795727443               3145728                  4096
-559038737      98305   660               4194304   700   701      2    10    20    30    40          0 1795727444 1795727444            2147483648                     0
`

func TestParseSysvShm(t *testing.T) {
	infos, err := parseSysvShm(bufio.NewScanner(strings.NewReader(sysvFixture)))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("%d rows, want 3", len(infos))
	}
	a, b, c := infos[0], infos[1], infos[2]
	if a.Key != 1592590380 || a.ID != 0 || a.Mode != 0o600 || a.Size != 3145728 || a.CreatorPID != 5044 ||
		a.Attached != 1 || a.Locked || a.Removed || a.HugeKnown || !a.DTime.IsZero() || a.ATime.Unix() != 1795727442 {
		t.Errorf("row 1: %+v", a)
	}
	if b.Key != 0 || b.Mode != 0o600 || !b.Locked || !b.Removed || b.UID != 1000 || b.GID != 1000 ||
		b.Resident != 3145728 || b.Swapped != 4096 || !b.HugeKnown || b.Huge {
		t.Errorf("row 2 (SHM_DEST|SHM_LOCKED): %+v", b)
	}
	if c.Key != -559038737 || c.ID != 98305 || c.Mode != 0o660 || c.LastPID != 701 || c.Attached != 2 ||
		c.UID != 10 || c.GID != 20 || c.CUID != 30 || c.CGID != 40 || !c.ATime.IsZero() || !c.HugeKnown || !c.Huge {
		t.Errorf("row 3 (negative key, inflated hugetlb rss): %+v", c)
	}
	if fmtKey(c.Key) != "0xdeadbeef" {
		t.Errorf("fmtKey(%d) = %s", c.Key, fmtKey(c.Key))
	}

	// Columns are found by name: a reordered or extended header works.
	re := "shmid key extra perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime\n7 42 x 644 100 1 2 0 0 0 0 0 0 0 0\n"
	infos, err = parseSysvShm(bufio.NewScanner(strings.NewReader(re)))
	if err != nil || len(infos) != 1 || infos[0].ID != 7 || infos[0].Key != 42 || infos[0].Mode != 0o644 || infos[0].Size != 100 {
		t.Fatalf("reordered header: %+v %v", infos, err)
	}
	for _, bad := range []string{"", "key shmid\n1 2\n", sysvFixture + "1 2 3\n", strings.Replace(sysvFixture, " 600 ", " 6x0 ", 1)} {
		if _, err := parseSysvShm(bufio.NewScanner(strings.NewReader(bad))); err == nil {
			t.Errorf("parse of %q succeeded", bad)
		}
	}
	huge := strings.Replace(sysvFixture, "3145728  5044  5044      1     0", "18446744073709551615  5044  5044      1     0", 1)
	if infos, err := parseSysvShm(bufio.NewScanner(strings.NewReader(huge))); err != nil || infos[0].Size != math.MaxInt64 {
		t.Errorf("size above int64: %v, %v", infos, err)
	}
}

func FuzzParseSysvShm(f *testing.F) {
	f.Add(sysvFixture)
	f.Add("key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime\n")
	f.Fuzz(func(t *testing.T, s string) {
		infos, err := parseSysvShm(bufio.NewScanner(strings.NewReader(s)))
		if err != nil {
			return
		}
		for _, in := range infos {
			if in.Mode&^0o777 != 0 || in.Key != int(int32(in.Key)) {
				t.Fatalf("bad row %+v", in)
			}
		}
	})
}

func TestReadSmapsFixture(t *testing.T) {
	const fixture = `7f00000000-7f00200000 rw-s 00000000 00:01 7      /SYSV12345678 (deleted)
Size:               2048 kB
KernelPageSize:        4 kB
Rss:                 100 kB
Locked:               12 kB
VmFlags: rd wr sh mr mw me ms lo
7f00200000-7f00600000 rw-s 00000000 00:11 8      /SYSV12345679 (deleted)
Size:               4096 kB
KernelPageSize:     2048 kB
Rss:                   0 kB
Shared_Hugetlb:     2048 kB
Private_Hugetlb:    2048 kB
Locked:                0 kB
VmFlags: rd wr sh mr mw me ms de ht
7f00600000-7f00601000 r--p 00000000 00:00 0
Size:                  4 kB
`
	path := filepath.Join(t.TempDir(), "smaps")
	if err := os.WriteFile(path, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	old := procSelfSmaps
	procSelfSmaps = path
	defer func() { procSelfSmaps = old }()
	e, err := readSmaps(0x7f00200000)
	if err != nil {
		t.Fatal(err)
	}
	if e.Start != 0x7f00200000 || e.End != 0x7f00600000 || e.Size != 4<<20 || e.KernelPageSize != 2<<20 ||
		e.Hugetlb() != 4<<20 || e.Locked != 0 || e.VMFlags[len(e.VMFlags)-1] != "ht" {
		t.Errorf("huge entry: %+v", e)
	}
	e, err = readSmaps(0x7f00000000)
	if err != nil || e.Rss != 100<<10 || e.Locked != 12<<10 || e.KernelPageSize != 4096 || e.Hugetlb() != 0 {
		t.Errorf("normal entry: %+v %v", e, err)
	}
	if _, err := readSmaps(0x7f00100000); err == nil {
		t.Error("found an entry for an address inside a mapping but not its start")
	}
}

func TestRmidForced(t *testing.T) {
	dir := t.TempDir()
	old := procRmidForced
	defer func() { procRmidForced = old }()
	for v, want := range map[string]bool{"0\n": false, "1\n": true} {
		procRmidForced = filepath.Join(dir, "f"+strings.TrimSpace(v))
		if err := os.WriteFile(procRmidForced, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := RmidForced(); err != nil || got != want {
			t.Errorf("RmidForced with %q = %v, %v; want %v", v, got, err, want)
		}
	}
	procRmidForced = filepath.Join(dir, "missing")
	if _, err := RmidForced(); err == nil {
		t.Error("RmidForced without the file succeeded")
	}
	procRmidForced = old
	got, err := RmidForced()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel.shm_rmid_forced on this machine: %v", got)
}
