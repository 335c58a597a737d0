// Package peer tells whether the other side of a ring is present, from
// its role lock (internal/lockfile): a lock held by another open file
// description is a live peer, whatever pids say. It also turns a change of
// presence into the cancellation of a context, so a side blocked on a
// semaphore wakes when its peer dies (the design bound: within 250 ms).
//
// While a side sleeps, a watch waits on a pidfd of the peer (the
// netpoller wakes it the moment the process exits, at no cost while it
// lives) when the peer's identity in the ring header names a process that
// is alive with the recorded start time; it then also looks at the lock
// every SlowInterval, as a safety net. Without a pidfd (another pid
// namespace, an identity not yet written) it looks at the lock every
// Interval. Nothing runs while no side sleeps.
//
// A watch costs a goroutine, a ticker, a pidfd and a look at /proc each
// time: too much for a side that sleeps once per item. The monitor (Start)
// is the cheap alternative for that hot path: one goroutine per watcher
// for its whole life, with a pidfd it opens once per peer identity, which
// looks at the lock when the peer's process exits and every Interval, but
// only while a sleeper is armed (Arm), and then calls the wake function
// the sleeper gave (posting its own semaphore) when the presence differs
// from what the sleeper expects, or when one sleep lasts long. Arming and
// disarming are two atomic stores.
package peer

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
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

	expect atomic.Uint32 // what an armed sleeper expects: armNone, armPresent or armAbsent
	arms   atomic.Uint64 // Arm calls, so the monitor tells a long sleep from a new one
	fired  atomic.Uint64 // how often the monitor found the presence differing from expect

	monMu   sync.Mutex // guards the monitor's start and stop
	monDone chan struct{}
	monWG   sync.WaitGroup
}

const (
	armNone uint32 = iota
	armPresent
	armAbsent
)

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
				// Someone holds the role still (not the process watched:
				// the header named another one): look every Interval,
				// no longer at the pidfd's slow safety-net pace.
				t.Reset(Interval)
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

// Start starts the watcher's monitor, if it is not running: a goroutine
// that, while a sleeper is armed, looks at the peer's lock when the peer's
// process exits (through a pidfd, opened once per identity that id
// returns) and every Interval, and calls wake when the presence differs
// from what the sleeper expects. It also calls wake every `every` (if
// positive) while one sleep stays armed, so that a sleeper whose other
// wake-ups were lost (a doorbell word overwritten in shared memory) looks
// again. wake must be cheap and must not block (it posts a semaphore).
// Stop ends the monitor; it must be called before the lock file is closed.
func (w *Watcher) Start(wake func(), every time.Duration) {
	w.monMu.Lock()
	defer w.monMu.Unlock()
	if w.monDone != nil {
		return
	}
	w.monDone = make(chan struct{})
	w.monWG.Add(1)
	go w.monitor(wake, every, w.monDone)
}

// Stop ends the monitor started by Start and waits for it. It is
// idempotent and safe without Start.
func (w *Watcher) Stop() {
	w.monMu.Lock()
	defer w.monMu.Unlock()
	if w.monDone == nil {
		return
	}
	close(w.monDone)
	w.monWG.Wait()
	w.monDone = nil
}

// Arm tells the monitor that a sleeper expects the peer to be present
// (want) or absent, and returns the current Fired count: the sleeper's
// wait is over when Fired differs from it. A monitor must be running
// (Start). One sleeper at a time; Disarm when the sleep ends.
func (w *Watcher) Arm(want bool) uint64 {
	e := armAbsent
	if want {
		e = armPresent
	}
	w.arms.Add(1)
	w.expect.Store(e)
	return w.fired.Load()
}

// Disarm ends what Arm began.
func (w *Watcher) Disarm() { w.expect.Store(armNone) }

// Fired counts the times the monitor found the peer's presence differing
// from what an armed sleeper expected (and called wake).
func (w *Watcher) Fired() uint64 { return w.fired.Load() }

func (w *Watcher) monitor(wake func(), every time.Duration, done <-chan struct{}) {
	defer w.monWG.Done()
	tick := Interval
	t := time.NewTicker(tick)
	defer t.Stop()
	var pf *pidFile
	var pfID proc.ID
	var sleep uint64         // the Arm count of the sleep being timed
	var sleepSince time.Time // since when it sleeps, or was last woken for its length
	defer func() {
		if pf != nil {
			pf.close()
		}
	}()
	for {
		// A new identity (a new peer, or the first look) gets a pidfd.
		if w.id != nil {
			if id := w.id(); id != pfID {
				if pf != nil {
					pf.close()
				}
				pf, pfID = openPidFile(id), id
			}
		}
		var exited <-chan struct{}
		want := Interval
		if pf != nil {
			// The pidfd reports the exit at once: the lock is looked at
			// only as a safety net, as in Watch.
			exited, want = pf.exited, SlowInterval
		}
		if want != tick {
			tick = want
			t.Reset(tick)
		}
		select {
		case <-done:
			return
		case <-exited:
			pf.close() // the process is gone: its locks were dropped first
			pf = nil
		case <-t.C:
		}
		e := w.expect.Load()
		if e == armNone {
			continue
		}
		if w.Present() != (e == armPresent) {
			w.fired.Add(1)
			wake()
			continue
		}
		if every > 0 {
			now := time.Now()
			if a := w.arms.Load(); a != sleep {
				sleep, sleepSince = a, now
			} else if now.Sub(sleepSince) >= every {
				sleepSince = now
				wake()
			}
		}
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
