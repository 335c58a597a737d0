// Package lockfile holds a ring's role locks: open file description (OFD)
// locks on one byte per role of /dev/shm/shmpc.NAME.lock. The kernel drops
// an OFD lock when the last descriptor of its open file description is
// closed, in particular when the holder dies, so a lock held means a live
// owner whatever pids and pid namespaces say.
//
// A File is safe for concurrent use.
package lockfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Role is the byte of the lock file that a role locks.
type Role int

const (
	Producer Role = 0
	Consumer Role = 1
)

func (r Role) String() string {
	switch r {
	case Producer:
		return "producer"
	case Consumer:
		return "consumer"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ErrHeld matches the error of TryLock when another open file description
// holds the role.
var ErrHeld = errors.New("role is held by a live process")

// ErrForeign matches the error of Open for a lock file that is not a
// regular file owned by the caller's uid (or root's view of one).
var ErrForeign = errors.New("lock file is not ours")

// File is an open lock file.
type File struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	created bool
	closed  bool
}

// Open opens the lock file at path, creating it with exactly perm (applied
// with fchmod, so the umask does not narrow it) when create is set and it
// does not exist. It refuses symlinks, non-regular files, and files owned
// by a uid other than wantUID (pass -1 to skip that check).
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
		return nil, fmt.Errorf("open lock file %s: owned by uid %d, not %d: %w", path, st.Uid, wantUID, ErrForeign)
	}
	if created {
		if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
			f.Close()
			_ = os.Remove(path)
			return nil, fmt.Errorf("chmod lock file %s: %w", path, os.NewSyscallError("fchmod", err))
		}
	}
	return &File{f: f, path: path, created: created}, nil
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
// File already holds succeeds.
func (l *File) TryLock(r Role) error {
	fd, err := l.fd()
	if err != nil {
		return err
	}
	lk := flock(unix.F_WRLCK, r)
	for {
		err = unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("lock %s role of %s: %w", r, l.path, ErrHeld)
	}
	if err != nil {
		return fmt.Errorf("lock %s role of %s: %w", r, l.path, os.NewSyscallError("fcntl", err))
	}
	return nil
}

// Unlock gives role's lock up.
func (l *File) Unlock(r Role) error {
	fd, err := l.fd()
	if err != nil {
		return err
	}
	lk := flock(unix.F_UNLCK, r)
	if err := unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk); err != nil {
		return fmt.Errorf("unlock %s role of %s: %w", r, l.path, os.NewSyscallError("fcntl", err))
	}
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

// Remove unlinks the lock file's path if it still names this File's inode
// (a successor may have replaced it), leaving locks and the descriptor as
// they are.
func (l *File) Remove() error {
	fd, err := l.fd()
	if err != nil {
		return err
	}
	var mine, there unix.Stat_t
	if err := unix.Fstat(int(fd), &mine); err != nil {
		return fmt.Errorf("stat lock file %s: %w", l.path, os.NewSyscallError("fstat", err))
	}
	if err := unix.Lstat(l.path, &there); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat lock file %s: %w", l.path, os.NewSyscallError("lstat", err))
	}
	if mine.Dev != there.Dev || mine.Ino != there.Ino {
		return nil
	}
	if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lock file: %w", err)
	}
	return nil
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
	return l.f.Close()
}
