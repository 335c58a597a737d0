// Package peer tells whether the other side of a ring is present, from
// its role lock (internal/lockfile): a lock held by another open file
// description is a live peer, whatever pids say. It also turns a change of
// presence into the cancellation of a context, so a side blocked on a
// semaphore wakes when its peer dies (DESIGN.md: within 250 ms).
//
// While a side sleeps, a watch waits on a pidfd of the peer (the
// netpoller wakes it the moment the process exits, at no cost while it
// lives) when the peer's identity in the ring header names a process that
// is alive with the recorded start time; it then also looks at the lock
// every SlowInterval, as a safety net. Without a pidfd (another pid
// namespace, an identity not yet written) it looks at the lock every
// Interval. Nothing runs while no side sleeps.
package peer

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/proc"
)

// Interval is how often a watch without a pidfd looks at the peer's lock.
// A look is one fcntl(F_OFD_GETLK) call.
const Interval = 50 * time.Millisecond

// SlowInterval is how often a watch with a pidfd looks at the lock too.
const SlowInterval = 200 * time.Millisecond

// Watcher watches one role of one lock file. It is safe for concurrent
// use.
type Watcher struct {
	lock *lockfile.File
	role lockfile.Role
	id   func() proc.ID // the peer's identity as its ring header says, or nil

	mu   sync.Mutex
	seen bool // the peer was present at some look
}

// New returns a watcher of role on lock. id, if not nil, returns the
// peer's identity from the ring header, for pidfd waits.
func New(lock *lockfile.File, role lockfile.Role, id func() proc.ID) *Watcher {
	return &Watcher{lock: lock, role: role, id: id}
}

// Present reports whether the peer holds its role now. An error reading
// the lock counts as absent.
func (w *Watcher) Present() bool {
	held, err := w.lock.Held(w.role)
	if err != nil {
		return false
	}
	if held {
		w.mu.Lock()
		w.seen = true
		w.mu.Unlock()
	}
	return held
}

// Seen reports whether the peer was present at any look so far.
func (w *Watcher) Seen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen
}

// ErrChanged is the cause of a Watch context cancelled because the peer's
// presence changed.
var ErrChanged = errors.New("peer presence changed")

// Watch returns a context that is cancelled, with cause ErrChanged, when
// the peer's presence differs from want; or when parent ends. stop
// releases the watch and must be called.
func (w *Watcher) Watch(parent context.Context, want bool) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	if w.Present() != want {
		cancel(ErrChanged)
		return ctx, func() { cancel(nil) }
	}
	var exited <-chan struct{}
	interval := Interval
	var pf *pidFile
	if want && w.id != nil {
		if pf = openPidFile(w.id()); pf != nil {
			exited = pf.exited
			interval = SlowInterval
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-exited:
				exited = nil
				// The process is gone; the kernel dropped its locks
				// before it became a zombie, so the look below sees it.
				if w.Present() != want {
					cancel(ErrChanged)
					return
				}
			case <-t.C:
				if w.Present() != want {
					cancel(ErrChanged)
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		wg.Wait()
		if pf != nil {
			pf.close()
		}
		cancel(nil)
	}
}

// pidFile waits for a process's exit through a pidfd in the netpoller.
type pidFile struct {
	f      *os.File
	exited chan struct{}
	wg     sync.WaitGroup
}

// openPidFile returns a pidFile for id's process, or nil when id does not
// name a live process with that start time (checked after the pidfd pins
// the pid, so a reused pid is never watched).
func openPidFile(id proc.ID) *pidFile {
	if id.PID <= 0 {
		return nil
	}
	fd, err := unix.PidfdOpen(id.PID, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil
	}
	if !proc.Alive(id) {
		unix.Close(fd)
		return nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &pidFile{f: f, exited: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := rc.Read(func(fd uintptr) bool {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 0)
			return err == nil && n > 0
		})
		if err == nil {
			close(p.exited)
		}
	}()
	return p
}

func (p *pidFile) close() {
	_ = p.f.SetReadDeadline(time.Now()) // ends the Read
	p.wg.Wait()
	p.f.Close()
}
