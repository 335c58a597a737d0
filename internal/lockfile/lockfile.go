// Package lockfile holds a ring's role locks: open file description (OFD)
// locks on one byte per role of /dev/shm/shmpc.NAME.lock. The kernel drops
// an OFD lock when the last descriptor of its open file description is
// closed, in particular when the holder dies, so a lock held means a live
// owner whatever pids and pid namespaces say.
//
// # The rules that make a lock mean something
//
// A lock on a file that is no longer at its path excludes nobody who opens
// the path afresh. So:
//
//   - A process claims a role with Claim: it opens the path, takes the
//     gate (byte 2) shared, takes the role, and checks that the file it
//     locked is still the one at the path (Stale); if not, it starts over
//     with the path's file. Then it lets the gate go and keeps the role.
//   - A process unlinks the file only with RemoveLocked, which requires
//     the gate exclusively and both roles on that very file (LockAll), and
//     the file still at the path. A process that created the file but lost
//     the race for its role leaves it alone.
//
// While a claimant holds the gate shared no cleaner (a process holding the
// gate exclusively: `shmpc gc`, a side that removes the ring as it leaves)
// can hold it, so a role the claimant finds held is held by a real owner,
// never by a cleaner that would be gone a moment later; and while a
// cleaner holds the gate, claimants wait for it (a bounded wait). Cleaners
// take the gate before any role and keep it until they close the file.
//
// A File is safe for concurrent use.
package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/internalhook"
)

// Role is the byte of the lock file that a role locks.
type Role int

const (
	Producer Role = 0
	Consumer Role = 1

	// gate is the byte that claimants lock shared and cleaners exclusively
	// (see the package documentation).
	gate Role = 2
)

func (r Role) String() string {
	switch r {
	case Producer:
		return "producer"
	case Consumer:
		return "consumer"
	case gate:
		return "gate"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ErrHeld matches the error of TryLock when another open file description
// holds the role.
var ErrHeld = errors.New("role is held by a live process")

// ErrGateHeld matches the error of LockAll when another process holds the
// gate: a claimant taking a role (for a moment) or another cleaner. It
// also matches ErrHeld. Unlike a held role it says nothing about a live
// owner, so a leaving side retries on it.
var ErrGateHeld = errors.New("gate is held by a process claiming or cleaning")

// ErrForeign matches the error of Open for a lock file that is not a
// regular file owned by the caller's uid (or root's view of one), or whose
// mode grants more than the caller's permission bits.
var ErrForeign = errors.New("lock file is not ours")

// ErrCleaning matches the error of Claim when a cleaner held the gate for
// longer than the claim's wait.
var ErrCleaning = errors.New("lock file is held by a process removing the ring")

// File is an open lock file.
type File struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	created bool
	closed  bool
	mine    [3]bool // the bytes this File holds a lock on
}

// Open opens the lock file at path, creating it with exactly perm (applied
// with fchmod, so the umask does not narrow it) when create is set and it
// does not exist. It refuses symlinks, non-regular files, and files owned
// by a uid other than wantUID (pass -1 to skip that check); when wantUID
// is not -1 and perm is not 0 it also refuses a file whose mode grants
// bits beyond perm.
// Open takes no lock: Claim is how a process takes a role.
func Open(path string, create bool, perm os.FileMode, wantUID int) (*File, error) {
	flags := unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags, 0)
	created := false
	if errors.Is(err, unix.ENOENT) && create {
		fd, err = unix.Open(path, flags|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
		if errors.Is(err, unix.EEXIST) {
			fd, err = unix.Open(path, flags, 0)
		} else if err == nil {
			created = true
		}
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("open lock file %s: %w", path, fs.ErrNotExist)
		}
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("open lock file %s: is a symbolic link: %w", path, ErrForeign)
		}
		return nil, fmt.Errorf("open lock file %s: %w", path, os.NewSyscallError("open", err))
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat lock file %s: %w", path, os.NewSyscallError("fstat", err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("open lock file %s: not a regular file: %w", path, ErrForeign)
	}
	if wantUID >= 0 && int(st.Uid) != wantUID {
		f.Close()
		return nil, fmt.Errorf("open lock file %s: owned by uid %d, not %d; remove it as its owner or root if it is a squatter's: %w", path, st.Uid, wantUID, ErrForeign)
	}
	if created {
		// A failure leaves the file: another process may have opened it
		// already, and only a holder of every lock on it may unlink it.
		if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
			f.Close()
			return nil, fmt.Errorf("chmod lock file %s: %w", path, os.NewSyscallError("fchmod", err))
		}
	} else if extra := os.FileMode(st.Mode&0o777) &^ perm.Perm(); wantUID >= 0 && perm != 0 && extra != 0 {
		f.Close()
		return nil, fmt.Errorf("open lock file %s: mode %#o grants %#o beyond %#o; remove it (shmpc gc) or widen -perm: %w",
			path, st.Mode&0o777, uint32(extra), uint32(perm.Perm()), ErrForeign)
	}
	if hook := internalhook.LockFileOpened; hook != nil {
		hook(path)
	}
	return &File{f: f, path: path, created: created}, nil
}

// ClaimOptions say how Claim opens the lock file and how long it waits for
// a cleaner.
type ClaimOptions struct {
	Create  bool        // create the file when it is missing
	Perm    os.FileMode // its mode when created, and the most a found file may grant (with UID)
	UID     int         // the owner a found file must have; -1: any (and no mode check)
	Wait    time.Duration
	OnStale func() // called when the file locked was no longer at the path (for tests and notes)
}

// DefaultCleanWait is how long Claim waits for a cleaner when
// ClaimOptions.Wait is zero. Cleaners hold the gate for the few system
// calls that remove a ring.
const DefaultCleanWait = 5 * time.Second

// staleTries bounds Claim's restarts when the file it locked was replaced:
// each needs another process to remove and create the file in between.
const staleTries = 1000

// Claim opens the lock file at path and takes role under the rules of the
// package documentation: the gate shared while it takes the role and
// checks that the file is still at the path, starting over with the path's
// file when it is not. It returns the File holding role (and not the
// gate), an error matching ErrHeld when a live owner holds role,
// ErrCleaning when a cleaner kept the gate past the wait, fs.ErrNotExist
// when the file is missing and opt.Create is not set, or ErrForeign.
func Claim(path string, role Role, opt ClaimOptions) (*File, error) {
	wait := opt.Wait
	if wait <= 0 {
		wait = DefaultCleanWait
	}
	deadline := time.Now().Add(wait)
	for range staleTries {
		l, err := Open(path, opt.Create, opt.Perm, opt.UID)
		if err != nil {
			return nil, err
		}
		if err := l.waitGate(deadline); err != nil {
			l.Close()
			if errors.Is(err, errStale) {
				if opt.OnStale != nil {
					opt.OnStale()
				}
				continue
			}
			return nil, err
		}
		if err := l.TryLock(role); err != nil {
			l.Close()
			return nil, err
		}
		stale, err := l.Stale()
		if err != nil {
			l.Close()
			return nil, err
		}
		if stale {
			// The file was removed (or replaced) between our open and our
			// locks: a role on it excludes nobody. Start over.
			l.Close()
			if opt.OnStale != nil {
				opt.OnStale()
			}
			continue
		}
		if err := l.Unlock(gate); err != nil {
			l.Close()
			return nil, err
		}
		return l, nil
	}
	return nil, fmt.Errorf("claim %s role of %s: the file was replaced %d times while it was being locked: %w", role, path, staleTries, ErrCleaning)
}

// errStale is waitGate's word that the file it waits on left the path.
var errStale = errors.New("lock file replaced")

// waitGate takes the gate shared, waiting (in short sleeps, never in a
// blocking fcntl) while a cleaner holds it, until deadline. It returns
// errStale when the file left the path meanwhile (the cleaner removed it).
func (l *File) waitGate(deadline time.Time) error {
	step := 200 * time.Microsecond
	for {
		err := l.setLock(unix.F_RDLCK, gate)
		if !errors.Is(err, ErrHeld) {
			return err
		}
		if stale, err := l.Stale(); err != nil {
			return err
		} else if stale {
			return errStale
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("lock file %s: another process (shmpc gc, or a side removing the ring as it leaves) held it longer than the wait; try again: %w", l.path, ErrCleaning)
		}
		time.Sleep(step)
		step = min(2*step, 10*time.Millisecond)
	}
}

// LockAll takes the gate exclusively and both roles (those this File holds
// already stay held), as a cleaner must before it judges or removes a
// ring. If any is held by another open file description it returns an
// error matching ErrHeld (and ErrGateHeld when it was the gate) and holds
// what it held before. On success undo
// gives up what LockAll took and keeps what was held before.
func (l *File) LockAll() (undo func(), err error) {
	var before [2]bool
	for _, r := range []Role{Producer, Consumer} {
		if before[r], err = l.holds(r); err != nil {
			return nil, err
		}
	}
	undo = func() {
		for _, r := range []Role{Consumer, Producer} {
			if !before[r] {
				_ = l.Unlock(r)
			}
		}
		_ = l.Unlock(gate)
	}
	if err := l.setLock(unix.F_WRLCK, gate); err != nil {
		return nil, err
	}
	for _, r := range []Role{Producer, Consumer} {
		if err := l.TryLock(r); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}

// holds reports whether this File holds role's lock (by its own record:
// the kernel does not report a description's own locks).
func (l *File) holds(r Role) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, fmt.Errorf("lock file %s: %w", l.path, os.ErrClosed)
	}
	return l.mine[r], nil
}

// RemoveLocked unlinks the file if this File holds the gate and both roles
// (LockAll) and the file is still at the path; it reports whether it did.
// Without the locks it removes nothing and returns an error.
func (l *File) RemoveLocked() (bool, error) {
	l.mu.Lock()
	all := l.mine[gate] && l.mine[Producer] && l.mine[Consumer]
	l.mu.Unlock()
	if !all {
		return false, fmt.Errorf("remove lock file %s: not holding the gate and both roles", l.path)
	}
	stale, err := l.Stale()
	if err != nil || stale {
		return false, err
	}
	if err := os.Remove(l.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("remove lock file: %w", err)
	}
	return true, nil
}

// Created reports whether Open created the file.
func (l *File) Created() bool { return l.created }

// Stale reports whether the file's path no longer names this File's
// inode (it was removed, or replaced by a successor's file): locks on it
// then exclude nobody who opens the path afresh.
func (l *File) Stale() (bool, error) {
	fd, err := l.fd()
	if err != nil {
		return false, err
	}
	var mine, there unix.Stat_t
	if err := unix.Fstat(int(fd), &mine); err != nil {
		return false, fmt.Errorf("stat lock file %s: %w", l.path, os.NewSyscallError("fstat", err))
	}
	if err := unix.Lstat(l.path, &there); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("stat lock file %s: %w", l.path, os.NewSyscallError("lstat", err))
	}
	return mine.Dev != there.Dev || mine.Ino != there.Ino, nil
}

// Chmod sets the file's permission bits to exactly perm (a file made by
// gc with 0600 gets the producer's -perm, so a group can open it).
func (l *File) Chmod(perm os.FileMode) error {
	fd, err := l.fd()
	if err != nil {
		return err
	}
	if err := unix.Fchmod(int(fd), uint32(perm.Perm())); err != nil {
		return fmt.Errorf("chmod lock file %s: %w", l.path, os.NewSyscallError("fchmod", err))
	}
	return nil
}

// Path returns the file's path.
func (l *File) Path() string { return l.path }

func (l *File) fd() (uintptr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("lock file %s: %w", l.path, os.ErrClosed)
	}
	return l.f.Fd(), nil
}

func flock(typ int16, r Role) unix.Flock_t {
	return unix.Flock_t{Type: typ, Whence: 0, Start: int64(r), Len: 1}
}

// TryLock takes role's lock without waiting. It returns an error matching
// ErrHeld when another open file description holds it. Taking a lock this
// File already holds succeeds. A role is claimed with Claim; TryLock is
// for a holder of one role that takes the other.
func (l *File) TryLock(r Role) error { return l.setLock(unix.F_WRLCK, r) }

// setLock takes a read or write lock on r's byte without waiting.
func (l *File) setLock(typ int16, r Role) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lock file %s: %w", l.path, os.ErrClosed)
	}
	lk := flock(typ, r)
	var err error
	for {
		err = unix.FcntlFlock(l.f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		if r == gate {
			return fmt.Errorf("lock gate of %s: %w (%w)", l.path, ErrGateHeld, ErrHeld)
		}
		return fmt.Errorf("lock %s role of %s: %w", r, l.path, ErrHeld)
	}
	if err != nil {
		return fmt.Errorf("lock %s role of %s: %w", r, l.path, os.NewSyscallError("fcntl", err))
	}
	l.mine[r] = true
	return nil
}

// Unlock gives role's lock up.
func (l *File) Unlock(r Role) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("lock file %s: %w", l.path, os.ErrClosed)
	}
	lk := flock(unix.F_UNLCK, r)
	if err := unix.FcntlFlock(l.f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		return fmt.Errorf("unlock %s role of %s: %w", r, l.path, os.NewSyscallError("fcntl", err))
	}
	l.mine[r] = false
	return nil
}

// Held reports whether another open file description holds role's lock.
// Locks held through this File do not count.
func (l *File) Held(r Role) (bool, error) {
	fd, err := l.fd()
	if err != nil {
		return false, err
	}
	lk := flock(unix.F_WRLCK, r)
	for {
		err = unix.FcntlFlock(fd, unix.F_OFD_GETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("test %s role of %s: %w", r, l.path, os.NewSyscallError("fcntl", err))
	}
	return lk.Type != unix.F_UNLCK, nil
}

// Stat returns the lock file's owner uid and permission bits.
func (l *File) Stat() (uid int, perm os.FileMode, err error) {
	fd, err := l.fd()
	if err != nil {
		return 0, 0, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return 0, 0, fmt.Errorf("stat lock file %s: %w", l.path, os.NewSyscallError("fstat", err))
	}
	return int(st.Uid), os.FileMode(st.Mode & 0o777), nil
}

// Close closes the file, which drops every lock it holds. It is
// idempotent.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.mine = [3]bool{}
	return l.f.Close()
}
