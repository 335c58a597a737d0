package shm

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var noMemOpts = Options{HugePages: Off, Lock: Off}

// TestCreateAttachShare: two attachments of one segment see each other's
// writes, the kernel's view (List, Stat, Lookup) matches, and Remove then
// Detach leaves nothing.
func TestCreateAttachShare(t *testing.T) {
	key := newKey(t)
	const size = 100000 // not a page multiple on purpose
	a := mustCreate(t, key, size, noMemOpts)
	if a.Size() != size || len(a.Bytes()) != size || a.Key() != key || a.Huge() || a.Locked() || a.ReadOnly() {
		t.Fatalf("Create: size %d len %d key %s huge %v locked %v ro %v", a.Size(), len(a.Bytes()), fmtKey(a.Key()), a.Huge(), a.Locked(), a.ReadOnly())
	}
	if !bytes.Equal(a.Bytes(), make([]byte, size)) {
		t.Fatal("a new segment is not zeroed")
	}
	b, err := Attach(key, false, Options{Lock: Off})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Detach() })
	if b.ID() != a.ID() || b.Size() != size || b.Huge() {
		t.Fatalf("Attach: id %d size %d huge %v, want id %d size %d normal", b.ID(), b.Size(), b.Huge(), a.ID(), size)
	}
	copy(a.Bytes()[size-5:], "hello")
	if got := string(b.Bytes()[size-5:]); got != "hello" {
		t.Fatalf("read through the second mapping: %q", got)
	}

	in, err := Lookup(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.Stat()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []Info{in, st} {
		if x.ID != a.ID() || x.Key != key || x.Size != size || x.Mode != 0o600 || x.UID != os.Geteuid() ||
			x.CUID != os.Geteuid() || x.GID != os.Getegid() || x.CreatorPID != os.Getpid() || x.LastPID != os.Getpid() ||
			x.Attached != 2 || x.Removed || x.Locked || x.ATime.IsZero() || x.CTime.IsZero() {
			t.Errorf("info %+v does not describe the segment", x)
		}
		if time.Since(x.CTime) > time.Minute || time.Since(x.CTime) < -time.Minute {
			t.Errorf("ctime %v is not now", x.CTime)
		}
	}
	if !st.HugeKnown || st.Huge {
		t.Errorf("Stat: Huge %v known %v, want false known", st.Huge, st.HugeKnown)
	}
	if in.HugeKnown && in.Huge {
		t.Errorf("Lookup says a normal segment is huge: %+v", in)
	}

	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Lookup(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Lookup after Remove: %v, want fs.ErrNotExist (the key is freed at once)", err)
	}
	in, err = StatID(a.ID())
	if err != nil || !in.Removed || in.Key != 0 || in.Attached != 2 {
		t.Fatalf("StatID after Remove: %+v, %v; want Removed, key 0, 2 attached", in, err)
	}
	copy(b.Bytes(), "still mapped")
	if string(a.Bytes()[:12]) != "still mapped" {
		t.Fatal("mappings stopped sharing after Remove")
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := b.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := StatID(a.ID()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("StatID after the last detach: %v, want fs.ErrNotExist", err)
	}
}

// TestDetachSemantics: Detach is idempotent, Bytes is nil afterwards, Stat
// reports ErrDetached, Remove still works once and a second time says so.
func TestDetachSemantics(t *testing.T) {
	key := newKey(t)
	s := mustCreate(t, key, 8192, noMemOpts)
	id := s.ID()
	for i := range 2 {
		if err := s.Detach(); err != nil {
			t.Fatalf("Detach #%d: %v", i+1, err)
		}
	}
	if s.Bytes() != nil {
		t.Error("Bytes() after Detach is not nil")
	}
	if _, err := s.Stat(); !errors.Is(err, ErrDetached) {
		t.Errorf("Stat after Detach: %v, want ErrDetached", err)
	}
	if s.ID() != id || s.Key() != key || s.Size() != 8192 {
		t.Error("getters changed after Detach")
	}
	in, err := StatID(id)
	if err != nil || in.Attached != 0 {
		t.Fatalf("after Detach: %+v %v; want the segment with 0 attachments (Detach does not remove)", in, err)
	}
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove after Detach: %v", err)
	}
	err = s.Remove()
	if !errors.Is(err, ErrRemoved) {
		t.Fatalf("second Remove: %v, want ErrRemoved", err)
	}
	mustContain(t, err.Error(), "remove segment id "+strconv.Itoa(id), "already removed")
	if err := RemoveID(id); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RemoveID of a destroyed segment: %v, want fs.ErrNotExist", err)
	}
	if _, err := AttachID(id, false, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AttachID of a destroyed segment: %v, want fs.ErrNotExist", err)
	}
}

func TestBadInput(t *testing.T) {
	key := newKey(t)
	for _, size := range []int{0, -1, -4096} {
		_, err := Create(key, size, noMemOpts)
		if !errors.Is(err, ErrSize) {
			t.Errorf("Create size %d: %v, want ErrSize", size, err)
		} else {
			mustContain(t, err.Error(), "must be positive")
		}
	}
	mem := memTotal()
	if mem <= 0 {
		t.Fatal("memTotal unknown")
	}
	for _, hp := range []Policy{Off, Auto, On} {
		_, err := Create(key, int(mem)+1, Options{HugePages: hp})
		if !errors.Is(err, ErrSize) {
			t.Errorf("Create above the machine's memory (huge %v): %v, want ErrSize", hp, err)
		} else {
			mustContain(t, err.Error(), "above the machine's memory")
		}
	}
	// kernel.shmmax is global, so a fixture stands in for a lower value.
	fake := filepath.Join(t.TempDir(), "shmmax")
	if err := os.WriteFile(fake, []byte("1048576\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := procShmmax
	procShmmax = fake
	_, err := Create(key, 1<<20+1, noMemOpts)
	procShmmax = old
	if !errors.Is(err, ErrSize) {
		t.Errorf("Create above shmmax: %v, want ErrSize", err)
	} else {
		mustContain(t, err.Error(), "kernel.shmmax (1048576)", "sysctl -w kernel.shmmax=1048577")
	}
	for _, k := range []int{0, 1 << 32, -1 << 33} {
		if _, err := Create(k, 4096, noMemOpts); !errors.Is(err, ErrKey) {
			t.Errorf("Create key %d: %v, want ErrKey", k, err)
		}
		if _, err := Attach(k, false, noMemOpts); !errors.Is(err, ErrKey) {
			t.Errorf("Attach key %d: %v, want ErrKey", k, err)
		}
	}
	for _, o := range []Options{{HugePages: 3}, {Lock: -1}, {Perm: 0o1777}, {Perm: os.ModeDir | 0o600}, {Perm: 0o400}, {Perm: 0o266}} {
		if _, err := Create(key, 4096, o); !errors.Is(err, ErrOptions) {
			t.Errorf("Create %+v: %v, want ErrOptions", o, err)
		}
	}
	if _, err := Attach(key, false, noMemOpts); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Attach of an absent key: %v, want fs.ErrNotExist", err)
	} else {
		mustContain(t, err.Error(), "attach segment key "+fmtKey(key), "no segment has this key")
	}
	if _, err := Lookup(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup of an absent key: %v, want fs.ErrNotExist", err)
	}
	if rows := ourSegments(t, key); len(rows) != 0 {
		t.Fatalf("failed creates left segments: %+v", rows)
	}
}

// TestCreateExisting: a taken key is refused, never adopted; a different
// size is called out.
func TestCreateExisting(t *testing.T) {
	key := newKey(t)
	s := mustCreate(t, key, 65536, noMemOpts)
	_, err := Create(key, 65536, noMemOpts)
	if !errors.Is(err, fs.ErrExist) || errors.Is(err, ErrSize) {
		t.Errorf("Create of a taken key, same size: %v; want fs.ErrExist, not ErrSize", err)
	} else {
		mustContain(t, err.Error(), "key is taken by segment id "+strconv.Itoa(s.ID()), "size 65536", "mode 0600")
	}
	for _, hp := range []Policy{Off, Auto} {
		_, err = Create(key, 1<<20, Options{HugePages: hp, Lock: Off})
		if !errors.Is(err, fs.ErrExist) || !errors.Is(err, ErrSize) {
			t.Errorf("Create of a taken key, other size (huge %v): %v; want fs.ErrExist and ErrSize", hp, err)
		} else {
			mustContain(t, err.Error(), "size differs from the 1048576 asked for")
		}
	}
	if in, err := s.Stat(); err != nil || in.Attached != 1 || in.Size != 65536 {
		t.Fatalf("the refused creates touched the segment: %+v %v", in, err)
	}
}

// TestPermission: 0600 by default, Perm applied exactly, and the umask
// plays no part.
func TestPermission(t *testing.T) {
	old := syscall.Umask(0o777)
	defer syscall.Umask(old)
	for _, p := range []os.FileMode{0, 0o600, 0o660, 0o644, 0o666} {
		key := newKey(t)
		s := mustCreate(t, key, 4096, Options{HugePages: Off, Lock: Off, Perm: p})
		in, err := s.Stat()
		if err != nil {
			t.Fatal(err)
		}
		want := p
		if want == 0 {
			want = 0o600
		}
		if in.Mode != want {
			t.Errorf("Perm %04o under umask 0777: mode %04o, want %04o", p, in.Mode, want)
		}
	}
}

// TestReadOnlyAttach: a read-only mapping sees the data and faults on a
// write (turned into a panic with SetPanicOnFault).
func TestReadOnlyAttach(t *testing.T) {
	key := newKey(t)
	s := mustCreate(t, key, 3*4096, noMemOpts)
	copy(s.Bytes()[4096:], "shared")
	ro, err := Attach(key, true, Options{Lock: Off, Pretouch: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Detach()
	if !ro.ReadOnly() || string(ro.Bytes()[4096:4102]) != "shared" {
		t.Fatalf("read-only attach: ro %v data %q", ro.ReadOnly(), ro.Bytes()[4096:4102])
	}
	if e := smapsOf(t, ro); e.Rss != 3*4096 {
		t.Errorf("read-only pretouch: Rss %d, want %d", e.Rss, 3*4096)
	}
	faulted := func() (faulted bool) {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { faulted = recover() != nil }()
		ro.Bytes()[0] = 1
		return false
	}()
	if !faulted {
		t.Fatal("writing a read-only mapping did not fault")
	}
	if s.Bytes()[0] != 0 {
		t.Fatal("the write through the read-only mapping landed")
	}
}

// TestForeignOwner: a segment owned by another uid (made with IPC_SET as
// root) is refused with errors that name the owner: to an unprivileged user
// for attach and remove, and to anyone for create.
func TestForeignOwner(t *testing.T) {
	needRoot(t, "giving a segment to another uid (IPC_SET)")
	key := newKey(t)
	s := mustCreate(t, key, 4096, noMemOpts)
	d, err := shmstat(s.ID())
	if err != nil {
		t.Fatal(err)
	}
	d.Perm.Uid, d.Perm.Gid, d.Perm.Mode = foreignUID, foreignGID, 0o600
	if _, err := unix.SysvShmCtl(s.ID(), unix.IPC_SET, &d); err != nil {
		t.Fatalf("IPC_SET: %v", err)
	}
	_, err = Create(key, 4096, noMemOpts)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over a foreign segment: %v, want fs.ErrExist", err)
	} else {
		mustContain(t, err.Error(), "owner uid 65534", "belongs to another user")
	}

	r := runHelperProcess(t, "foreign", "SHM_KEY="+strconv.Itoa(key), "SHM_ID="+strconv.Itoa(s.ID()))
	for _, step := range []string{"attach", "attachro", "remove"} {
		if !r.Is[step+"/perm"] {
			t.Errorf("%s as uid %d: %q, want fs.ErrPermission", step, helperUID, r.Errors[step])
		}
		mustContain(t, r.Errors[step], "owned by uid 65534")
	}
	mustContain(t, r.Errors["attach"], "mode 0600", "we (uid 65533, gid 65533) may not attach it read-write")
	mustContain(t, r.Errors["attachro"], "may not attach it read-only")
	mustContain(t, r.Errors["remove"], "only they or root may remove it")
	if !r.Is["create/exist"] {
		t.Errorf("create as uid %d: %q, want fs.ErrExist", helperUID, r.Errors["create"])
	}
	if r.Errors["stat"] != "" {
		t.Errorf("StatID as uid %d: %s", helperUID, r.Errors["stat"])
	}
	if in, err := s.Stat(); err != nil || in.Attached != 1 || in.UID != foreignUID {
		t.Fatalf("after the foreign user's attempts: %+v %v", in, err)
	}
}

// TestMemlockLimit: with RLIMIT_MEMLOCK at 1 MiB (as an unprivileged user),
// Lock On fails with the figure and the fix, Auto goes on with a note.
func TestMemlockLimit(t *testing.T) {
	key := newKey(t)
	r := runHelperProcess(t, "memlock", "SHM_KEY="+strconv.Itoa(key))
	if !r.Is["on/lock"] {
		t.Errorf("Lock On over the limit: %q, want ErrLock", r.Errors["on"])
	}
	mustContain(t, r.Errors["on"], "mlock 4 MiB: RLIMIT_MEMLOCK is 1 MiB", "ulimit -l", "CAP_IPC_LOCK", "cannot allocate memory")
	if r.Errors["auto"] != "" || r.Locked {
		t.Fatalf("Lock Auto over the limit: err %q locked %v; want success, unlocked", r.Errors["auto"], r.Locked)
	}
	if len(r.Notes) != 1 {
		t.Fatalf("Lock Auto notes: %q, want one", r.Notes)
	}
	mustContain(t, r.Notes[0], "not locked in memory", "RLIMIT_MEMLOCK is 1 MiB")
	if rows := ourSegments(t, key); len(rows) != 0 {
		t.Fatalf("the helper left segments: %+v", rows)
	}
}

// TestLeakCheckSeesOurSegments proves the TestMain leak check can fail: a
// live segment of ours is reported, and is no longer once removed.
func TestLeakCheckSeesOurSegments(t *testing.T) {
	key := newKey(t)
	s := mustCreate(t, key, 4096, noMemOpts)
	found := func() bool {
		leaked, err := leakedSegments()
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range leaked {
			if in.ID == s.ID() {
				return true
			}
		}
		return false
	}
	if !found() {
		t.Fatal("leak check does not see a live segment of ours")
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if !found() {
		t.Fatal("leak check does not see a removed segment still attached (key 0)")
	}
	if err := s.Detach(); err != nil {
		t.Fatal(err)
	}
	if found() {
		t.Fatal("leak check reports a destroyed segment")
	}
}
