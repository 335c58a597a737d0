package sem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/errline"
)

// tempTries is how many temporary names creation tries before it gives up
// with EAGAIN (glibc's NRETRIES).
const tempTries = 50

// openTries bounds OpenOrCreate's open-or-create loop, which glibc repeats
// without bound, against a peer that keeps creating and removing the name.
const openTries = 50

// Create creates a new semaphore with the given initial value, failing with
// an error matching fs.ErrExist if the name exists (sem_open with
// O_CREAT|O_EXCL). It writes the 32-byte image to an unnamed file in
// /dev/shm (O_TMPFILE) and links it to the final name, so no process ever
// sees a partial semaphore and a process killed while creating leaves no
// file behind; where O_TMPFILE or /proc/self/fd is missing it uses a
// temporary file /dev/shm/sem.XXXXXX, as glibc does. Unlike glibc, it sets the file's permission
// bits to exactly perm with fchmod, so the umask cannot narrow them; perm
// may hold only permission bits (0o777). A value above ValueMax is EINVAL.
// The caller owns the returned Semaphore and must Close it; the file stays
// until Unlink.
func Create(name string, value uint32, perm os.FileMode) (*Semaphore, error) {
	n, err := parseName(name)
	if err != nil {
		return nil, fmt.Errorf("create semaphore: %w", err)
	}
	if err := checkCreateArgs(value, perm); err != nil {
		return nil, fmt.Errorf("create semaphore %q: %w", n.canon, err)
	}
	s, err := createFile(n, value, perm)
	if err != nil {
		return nil, fmt.Errorf("create semaphore %q: %w", n.canon, err)
	}
	return s, nil
}

// Open opens an existing semaphore (sem_open without O_CREAT), failing with
// an error matching fs.ErrNotExist if there is none. The file is opened
// O_NOFOLLOW, checked with fstat (a regular file of at least 32 bytes, so a
// short file is an error rather than a SIGBUS), mapped, and its private word
// and value are checked (errors match ErrInvalid). The caller owns the
// returned Semaphore and must Close it.
func Open(name string) (*Semaphore, error) {
	n, err := parseName(name)
	if err != nil {
		return nil, fmt.Errorf("open semaphore: %w", err)
	}
	s, err := openFile(n)
	if err != nil {
		return nil, fmt.Errorf("open semaphore %q: %w", n.canon, err)
	}
	return s, nil
}

// OpenOrCreate opens the semaphore if it exists and creates it as Create does
// otherwise (sem_open with O_CREAT). value and perm apply only if it creates
// the file, but both are validated in any case. If another process creates
// the name between the attempt to open it and the link, the other's
// semaphore is opened, as glibc does. The caller owns the returned Semaphore
// and must Close it.
func OpenOrCreate(name string, value uint32, perm os.FileMode) (*Semaphore, error) {
	n, err := parseName(name)
	if err != nil {
		return nil, fmt.Errorf("open or create semaphore: %w", err)
	}
	if err := checkCreateArgs(value, perm); err != nil {
		return nil, fmt.Errorf("open or create semaphore %q: %w", n.canon, err)
	}
	for range openTries {
		s, err := openFile(n)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("open or create semaphore %q: %w", n.canon, err)
		}
		s, err = createFile(n, value, perm)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("open or create semaphore %q: %w", n.canon, err)
		}
	}
	return nil, fmt.Errorf("open or create semaphore %q: the name appeared and vanished %d times: %w",
		n.canon, openTries, unix.EAGAIN)
}

// Unlink removes the semaphore's name, as sem_unlink does: processes that
// have it open keep using it; a later Create makes a new one. Errors are
// glibc's: an invalid name matches fs.ErrNotExist (ENOENT) as well as
// ErrInvalidName, a missing one fs.ErrNotExist, and EPERM is reported as
// EACCES.
func Unlink(name string) error {
	n, err := parseName(name)
	if err != nil {
		var ne *NameError
		if errors.As(err, &ne) && ne.Errno == unix.EINVAL {
			ne.Errno = unix.ENOENT
		}
		return fmt.Errorf("unlink semaphore: %w", err)
	}
	err = ignoringEINTR(func() error { return unix.Unlink(n.path) })
	if err == unix.EPERM {
		err = unix.EACCES
	}
	if err != nil {
		return fmt.Errorf("unlink semaphore %q: %w", n.canon, &os.PathError{Op: "unlink", Path: n.path, Err: err})
	}
	return nil
}

func checkCreateArgs(value uint32, perm os.FileMode) error {
	if value > ValueMax {
		return fmt.Errorf("initial value %d exceeds SEM_VALUE_MAX %d: %w", value, ValueMax, unix.EINVAL)
	}
	if perm&^fs.ModePerm != 0 {
		return fmt.Errorf("permission %v has bits other than 0777: %w", perm, unix.EINVAL)
	}
	return nil
}

// image returns the bytes of a new process-shared semaphore with the given
// value, as glibc's __new_sem_open_init writes them: data = value (no
// waiters), private = 0x80, the rest zero.
func image(value uint32) [semSize]byte {
	var b [semSize]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(value))
	binary.LittleEndian.PutUint32(b[privateOffset:], futexShared)
	return b
}

// openFile opens, checks and maps an existing semaphore file.
func openFile(n semName) (*Semaphore, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(n.path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: n.path, Err: err}
	}
	s, err := mapFile(n, fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return s, nil
}

// createFile makes a new semaphore file: a file holding the complete
// image, linked to the final name (unnamed if it can be, else a temporary
// name that is removed in every case). It fails with EEXIST if the name
// exists.
func createFile(n semName, value uint32, perm os.FileMode) (*Semaphore, error) {
	// An unnamed file (O_TMPFILE) linked to the name once it holds the
	// image: a process killed at any point leaves no file behind. Where
	// the file system or /proc cannot do that, a named temporary file, as
	// glibc uses, which a kill before the unlink leaves behind.
	fd, err := openTmpfile(perm)
	if err == nil {
		s, err := fillAndLink(n, fd, value, perm, "", func() error {
			return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, n.path, unix.AT_SYMLINK_FOLLOW)
		})
		if err == nil || !errors.Is(err, errNoTmpfileLink) {
			return s, err
		}
	}
	var tmp string
	for i := 0; ; i++ {
		tmp = Dir + filePrefix + tempSuffix()
		err := ignoringEINTR(func() (err error) {
			fd, err = unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm))
			return err
		})
		if err == nil {
			break
		}
		if err != unix.EEXIST {
			return nil, &os.PathError{Op: "open", Path: tmp, Err: err}
		}
		if i+1 == tempTries {
			return nil, fmt.Errorf("no free temporary name after %d tries: %w", tempTries, unix.EAGAIN)
		}
	}
	defer unix.Unlink(tmp)
	return fillAndLink(n, fd, value, perm, tmp, func() error { return unix.Link(tmp, n.path) })
}

// errNoTmpfileLink marks a failure to link an O_TMPFILE file (no /proc,
// say): createFile then takes the named temporary file.
var errNoTmpfileLink = errors.New("cannot link an unnamed file")

// openTmpfile opens an unnamed file in Dir, or fails where the file system
// does not support O_TMPFILE.
func openTmpfile(perm os.FileMode) (int, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Open(Dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(perm))
		return err
	})
	return fd, err
}

// fillAndLink sets fd's mode to perm, writes the semaphore's image, maps it
// and gives it the name with link; it closes fd on failure. tmp names the
// file in errors ("" for an unnamed file).
func fillAndLink(n semName, fd int, value uint32, perm os.FileMode, tmp string, link func() error) (*Semaphore, error) {
	where := tmp
	if where == "" {
		where = Dir + " (unnamed)"
	}
	fail := func(err error) (*Semaphore, error) {
		unix.Close(fd)
		return nil, err
	}
	if err := ignoringEINTR(func() error { return unix.Fchmod(fd, uint32(perm)) }); err != nil {
		return fail(&os.PathError{Op: "fchmod", Path: where, Err: err})
	}
	img := image(value)
	for off := 0; off < len(img); {
		var w int
		err := ignoringEINTR(func() (err error) {
			w, err = unix.Write(fd, img[off:])
			return err
		})
		if err != nil {
			return fail(&os.PathError{Op: "write", Path: where, Err: err})
		}
		off += w
	}
	s, err := mapFile(n, fd)
	if err != nil {
		return fail(err)
	}
	if err := ignoringEINTR(link); err != nil {
		s.Close()
		if tmp == "" && err != unix.EEXIST {
			return nil, fmt.Errorf("%w: %w", errNoTmpfileLink, err)
		}
		return nil, &os.LinkError{Op: "link", Old: where, New: n.path, Err: err}
	}
	return s, nil
}

// mapFile checks that fd is a regular file of at least 32 bytes, maps it
// and checks the private word and value. It does not close fd on failure.
func mapFile(n semName, fd int) (*Semaphore, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: n.path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file (mode %#o): %w", n.path, st.Mode, ErrInvalid)
	}
	if st.Size < semSize {
		return nil, fmt.Errorf("%s is %d bytes, a semaphore needs %d: %w", n.path, st.Size, semSize, ErrInvalid)
	}
	mem, err := unix.Mmap(fd, 0, semSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: n.path, Err: err}
	}
	if afterMap != nil {
		afterMap(fd)
	}
	if err := checkMapped(n, mem); err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return newSemaphore(n.canon, fd, mem), nil
}

// afterMap, if set (only by tests), runs between mapFile's mmap and its
// first read of the words: the window in which another process can
// truncate the file that fstat found long enough.
var afterMap func(fd int)

// checkMapped reads and checks the mapped words under the fault guard: the
// file may have been truncated since fstat looked (anyone who can write it
// can), and the first read of the mapping must then be an error, not a
// SIGBUS.
func checkMapped(n semName, mem []byte) (err error) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = fmt.Errorf("%s was truncated while it was being opened (memory fault): %w", n.path, ErrInvalid)
		}
	}(debug.SetPanicOnFault(true))
	data, private := words(mem)
	return checkWords(n.canon, data.Load(), private.Load())
}

// tempSuffix returns six characters as mktemp(3) chooses them.
func tempSuffix() string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [6]byte
	for i := range b {
		b[i] = chars[rand.IntN(len(chars))]
	}
	return string(b[:])
}

// ignoringEINTR repeats fn while it fails with EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// Owner returns the uid that owns the semaphore's file and its permission
// bits, read with fstat from the open file (so a rename or unlink of the
// name does not change the answer).
func (s *Semaphore) Owner() (uid int, perm os.FileMode, err error) {
	if !s.acquire() {
		return 0, 0, s.closedError("stat")
	}
	defer s.release()
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return 0, 0, fmt.Errorf("stat semaphore %q: %w", s.name, os.NewSyscallError("fstat", err))
	}
	return int(st.Uid), os.FileMode(st.Mode) & fs.ModePerm, nil
}

// CheckOwner reports whether the semaphore's file is owned by uid and grants
// no permission bits beyond perm. A file owned by another uid gives an error
// matching ErrForeignOwner; extra permission bits give one matching
// ErrLoosePerm; both can be reported at once. The file is not changed:
// the caller decides what to do.
func (s *Semaphore) CheckOwner(uid int, perm os.FileMode) error {
	gotUID, gotPerm, err := s.Owner()
	if err != nil {
		return err
	}
	var errs []error
	if gotUID != uid {
		errs = append(errs, fmt.Errorf("semaphore %q is owned by uid %d, want uid %d: %w", s.name, gotUID, uid, ErrForeignOwner))
	}
	if extra := gotPerm &^ perm.Perm(); extra != 0 {
		errs = append(errs, fmt.Errorf("semaphore %q has permission %#o, which grants %#o beyond the requested %#o: %w",
			s.name, uint32(gotPerm), uint32(extra), uint32(perm.Perm()), ErrLoosePerm))
	}
	return errline.Join(errs)
}
