package sem_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/sem"
)

// badNames are names glibc 2.36 refuses, with the errno sem_open gives and
// the one sem_unlink gives. TestInteropNames checks the same table against
// the C library.
var badNames = []struct {
	name         string
	open, unlink syscall.Errno
}{
	{"", unix.EINVAL, unix.ENOENT},
	{"/", unix.EINVAL, unix.ENOENT},
	{"///", unix.EINVAL, unix.ENOENT},
	{"a/b", unix.EINVAL, unix.ENOENT},
	{"/a/", unix.EINVAL, unix.ENOENT},
	{"/" + strings.Repeat("q", 252), unix.ENAMETOOLONG, unix.ENAMETOOLONG},
	{strings.Repeat("q", 255), unix.ENAMETOOLONG, unix.ENAMETOOLONG},
	{strings.Repeat("q", 256), unix.EINVAL, unix.ENOENT},
	{"//" + strings.Repeat("q", 300), unix.EINVAL, unix.ENOENT},
}

// TestBadNames shows every entry point refuses names glibc refuses, with an
// error matching ErrInvalidName and glibc's errno, and creates nothing.
func TestBadNames(t *testing.T) {
	for _, c := range badNames {
		var errs = map[string]error{}
		_, errs["Create"] = sem.Create(c.name, 0, 0o600)
		_, errs["Open"] = sem.Open(c.name)
		_, errs["OpenOrCreate"] = sem.OpenOrCreate(c.name, 0, 0o600)
		_, errs["Path"] = sem.Path(c.name)
		for op, err := range errs {
			if !errors.Is(err, sem.ErrInvalidName) || !errors.Is(err, c.open) {
				t.Errorf("%s(%.20q...): %v, want ErrInvalidName and %v", op, c.name, err, c.open)
			}
			var ne *sem.NameError
			if !errors.As(err, &ne) || ne.Name != c.name {
				t.Errorf("%s: %v is not a *NameError for the name", op, err)
			}
		}
		err := sem.Unlink(c.name)
		if !errors.Is(err, sem.ErrInvalidName) || !errors.Is(err, c.unlink) {
			t.Errorf("Unlink(%.20q...): %v, want ErrInvalidName and %v", c.name, err, c.unlink)
		}
	}
	if _, err := sem.Path("x\x00y"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("a NUL byte: %v, want EINVAL", err)
	}
}

// TestNameForms shows "/x", "//x" and "x" are one semaphore, the longest
// name glibc accepts (251 bytes) works, and Name is canonical.
func TestNameForms(t *testing.T) {
	name := testName(t)
	s, err := sem.Create("//"+name, 2, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Name() != name {
		t.Errorf("Name() = %q, want %q", s.Name(), name)
	}
	p, _ := sem.Path(name)
	if want := "/dev/shm/sem." + name[1:]; p != want {
		t.Errorf("Path = %q, want %q", p, want)
	}
	o, err := sem.Open(name[1:])
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if v := mustValue(t, o); v != 2 {
		t.Errorf("value through another form of the name: %d", v)
	}
	if _, err := sem.Create(name[1:], 0, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing name: %v, want fs.ErrExist", err)
	}

	long := "/" + strings.Repeat("L", 251)
	l, err := sem.Create(long, 0, 0o600)
	if err != nil {
		t.Fatalf("251-byte name: %v", err)
	}
	l.Close()
	if err := sem.Unlink(long); err != nil {
		t.Fatalf("unlink 251-byte name: %v", err)
	}
}

// TestMissingAndExisting checks the fs sentinels of the common outcomes.
func TestMissingAndExisting(t *testing.T) {
	name := testName(t)
	if _, err := sem.Open(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing name: %v, want fs.ErrNotExist", err)
	}
	if err := sem.Unlink(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Unlink of a missing name: %v, want fs.ErrNotExist", err)
	}
	s, err := sem.OpenOrCreate(name, 3, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// OpenOrCreate of an existing name opens it; value and perm are ignored.
	s2, err := sem.OpenOrCreate(name, 7, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if v := mustValue(t, s2); v != 3 {
		t.Errorf("OpenOrCreate of an existing semaphore: value %d, want 3", v)
	}
	if _, perm, _ := s2.Owner(); perm != 0o600 {
		t.Errorf("OpenOrCreate changed the permission to %v", perm)
	}
	if _, err := sem.Create(name, 0, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create of an existing name: %v, want fs.ErrExist", err)
	}
}

// TestBadCreateArgs: a value above SEM_VALUE_MAX and non-permission mode
// bits are EINVAL, and nothing is created.
func TestBadCreateArgs(t *testing.T) {
	name := testName(t)
	if _, err := sem.Create(name, sem.ValueMax+1, 0o600); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Create with value %d: %v, want EINVAL", uint32(sem.ValueMax+1), err)
	}
	if _, err := sem.OpenOrCreate(name, 1<<32-1, 0o600); !errors.Is(err, unix.EINVAL) {
		t.Errorf("OpenOrCreate with value 2^32-1: %v, want EINVAL", err)
	}
	if _, err := sem.Create(name, 0, 0o600|os.ModeSetuid); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Create with setuid: %v, want EINVAL", err)
	}
	if _, err := sem.Open(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused Create left something: %v", err)
	}
	s, err := sem.Create(name, sem.ValueMax, 0o600)
	if err != nil {
		t.Fatalf("Create with SEM_VALUE_MAX: %v", err)
	}
	defer s.Close()
	if err := s.Post(); !errors.Is(err, sem.ErrOverflow) {
		t.Errorf("Post at SEM_VALUE_MAX: %v, want ErrOverflow", err)
	}
	if v := mustValue(t, s); v != sem.ValueMax {
		t.Errorf("value after overflow: %#x", v)
	}
}

// writeSemFile writes raw bytes as the semaphore file of a fresh test name.
func writeSemFile(t *testing.T, b []byte) (name, path string) {
	t.Helper()
	name = testName(t)
	path, _ = sem.Path(name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name, path
}

// TestBadFiles puts files that are not valid semaphores under a name: short
// files (which would make C fault with SIGBUS), a process-private semaphore,
// an impossible value, a FIFO, a directory and a symlink. Open and
// OpenOrCreate must refuse each with a clear error and leave it unchanged;
// longer files with a valid image are accepted, as glibc accepts them.
func TestBadFiles(t *testing.T) {
	good := sem.Image(1)
	private0 := good
	private0[8] = 0
	private81 := good
	private81[8] = 0x81
	huge := sem.Image(0)
	huge[3] = 0x80 // value 0x80000000

	for _, c := range []struct {
		what string
		b    []byte
	}{
		{"empty file", nil},
		{"8-byte file", good[:8]},
		{"31-byte file", good[:31]},
		{"private word 0", private0[:]},
		{"private word 0x81", private81[:]},
		{"value above SEM_VALUE_MAX", huge[:]},
	} {
		name, path := writeSemFile(t, c.b)
		for op, open := range map[string]func() (*sem.Semaphore, error){
			"Open":         func() (*sem.Semaphore, error) { return sem.Open(name) },
			"OpenOrCreate": func() (*sem.Semaphore, error) { return sem.OpenOrCreate(name, 0, 0o600) },
		} {
			s, err := open()
			if !errors.Is(err, sem.ErrInvalid) {
				if s != nil {
					s.Close()
				}
				t.Errorf("%s: %s = %v, want ErrInvalid", c.what, op, err)
				continue
			}
			t.Logf("%s: %v", c.what, err)
		}
		if got, _ := os.ReadFile(path); string(got) != string(c.b) {
			t.Errorf("%s: the file was changed to % x", c.what, got)
		}
	}

	// A longer file whose first 32 bytes are a semaphore works (glibc maps
	// only 32 bytes and does not look at the size).
	name, _ := writeSemFile(t, append(good[:], make([]byte, 4064)...))
	s, err := sem.Open(name)
	if err != nil {
		t.Fatalf("4096-byte file with a valid image: %v", err)
	}
	if v := mustValue(t, s); v != 1 {
		t.Errorf("value %d", v)
	}
	s.Close()

	// A FIFO, a directory and a symlink under the name.
	name = testName(t)
	path, _ := sem.Path(name)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sem.Open(name); !errors.Is(err, sem.ErrInvalid) {
		t.Errorf("FIFO: %v, want ErrInvalid", err)
	}
	name = testName(t)
	path, _ = sem.Path(name)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := path
	t.Cleanup(func() { os.Remove(dir) })
	if _, err := sem.Open(name); !errors.Is(err, unix.EISDIR) {
		t.Errorf("directory: %v, want EISDIR", err)
	}
	target, _ := writeSemFile(t, good[:])
	targetPath, _ := sem.Path(target)
	name = testName(t)
	path, _ = sem.Path(name)
	if err := os.Symlink(targetPath, path); err != nil {
		t.Fatal(err)
	}
	if _, err := sem.Open(name); !errors.Is(err, unix.ELOOP) {
		t.Errorf("symlink: %v, want ELOOP (O_NOFOLLOW)", err)
	}
}

// TestCreateFile checks what Create leaves on disk: exactly the 32-byte
// image, one link (the temporary name is gone), and exactly the requested
// permission even under a umask that would narrow it.
func TestCreateFile(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	for _, perm := range []os.FileMode{0o600, 0o660, 0o666, 0o640, 0o400} {
		name := testName(t)
		s, err := sem.Create(name, 5, perm)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		path, _ := sem.Path(name)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != perm {
			t.Errorf("perm %v under umask 077: file mode %v", perm, fi.Mode())
		}
		if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
			t.Errorf("file has %d links: the temporary name was left", n)
		}
		b, _ := os.ReadFile(path)
		if want := sem.Image(5); string(b) != string(want[:]) {
			t.Errorf("file bytes % x, want % x", b, want)
		}
	}
}

// TestOwner checks Owner and CheckOwner on our own file, and, as root, on a
// file given to another uid.
func TestOwner(t *testing.T) {
	s, name := mustCreate(t, 0)
	uid, perm, err := s.Owner()
	if err != nil || uid != os.Getuid() || perm != 0o600 {
		t.Fatalf("Owner = %d, %v, %v; want %d, 0600", uid, perm, err, os.Getuid())
	}
	if err := s.CheckOwner(os.Getuid(), 0o600); err != nil {
		t.Errorf("CheckOwner matching: %v", err)
	}
	if err := s.CheckOwner(os.Getuid(), 0o660); err != nil {
		t.Errorf("CheckOwner with a wider allowance: %v", err)
	}
	err = s.CheckOwner(os.Getuid(), 0o400)
	if !errors.Is(err, sem.ErrLoosePerm) || errors.Is(err, sem.ErrForeignOwner) {
		t.Errorf("CheckOwner 0400 on a 0600 file: %v, want ErrLoosePerm only", err)
	}
	err = s.CheckOwner(os.Getuid()+1, 0o400)
	if !errors.Is(err, sem.ErrLoosePerm) || !errors.Is(err, sem.ErrForeignOwner) {
		t.Errorf("CheckOwner with another uid and 0400: %v, want both", err)
	}
	t.Log(err)

	if os.Geteuid() != 0 {
		t.Skip("giving a file to another uid needs root")
	}
	path, _ := sem.Path(name)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// The check reads the open file, so it sees the change.
	err = s.CheckOwner(os.Getuid(), 0o600)
	if !errors.Is(err, sem.ErrForeignOwner) || !errors.Is(err, sem.ErrLoosePerm) {
		t.Errorf("CheckOwner on a file of uid 65534, mode 0666: %v", err)
	}
	t.Log(err)
}

// TestConcurrentCreate races Create and OpenOrCreate on one name: exactly
// one Create wins, and every OpenOrCreate ends up on the same semaphore.
func TestConcurrentCreate(t *testing.T) {
	for range 20 {
		name := testName(t)
		const n = 8
		var wg sync.WaitGroup
		handles := make([]*sem.Semaphore, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				if i%2 == 0 {
					handles[i], errs[i] = sem.Create(name, 0, 0o600)
				} else {
					handles[i], errs[i] = sem.OpenOrCreate(name, 0, 0o600)
				}
			})
		}
		wg.Wait()
		created := 0
		var open []*sem.Semaphore
		for i, err := range errs {
			switch {
			case err == nil:
				open = append(open, handles[i])
				if i%2 == 0 {
					created++
				}
			case i%2 == 0 && errors.Is(err, fs.ErrExist):
			default:
				t.Fatalf("goroutine %d: %v", i, err)
			}
		}
		if created > 1 {
			t.Fatalf("%d Creates succeeded on one name", created)
		}
		if err := open[0].Post(); err != nil {
			t.Fatal(err)
		}
		for i, h := range open {
			if v := mustValue(t, h); v != 1 {
				t.Fatalf("handle %d sees value %d: not the same semaphore", i, v)
			}
			h.Close()
		}
	}
}
