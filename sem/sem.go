package sem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Layout of glibc's 64-bit-atomics sem_t (struct new_sem), 32 bytes.
const (
	semSize       = 32   // bytes of the file that are mapped and used
	privateOffset = 8    // int32 private: FUTEX_SHARED for a process-shared semaphore
	futexShared   = 0x80 // the private word of every process-shared semaphore

	// ValueMax is SEM_VALUE_MAX: the largest value a semaphore can hold.
	ValueMax = 0x7fffffff

	waiterOne = 1 << 32                // one waiter in the data word's high half (SEM_NWAITERS_SHIFT)
	waiterDec = ^uint64(waiterOne - 1) // adding it removes one waiter
)

// Bits of Semaphore.state: a closed flag and a count of calls in progress,
// the pattern of internal/poll's fdMutex reduced to what is needed here.
const (
	stateClosed = 1
	stateRefOne = 2
)

// cancelRewake is how often a canceller repeats its FUTEX_WAKE until the
// waiter it is cancelling acknowledges; see Wait.
const cancelRewake = time.Millisecond

// maxSlice bounds one futex sleep of a Wait whose context can end (two
// wake-ups a second while idle at most; see waitSlow).
const maxSlice = 500 * time.Millisecond

// Semaphore is an open named semaphore: a 32-byte file under /dev/shm mapped
// into this process, laid out and operated on exactly as glibc's sem_open,
// sem_post and sem_wait do, so that C and Go processes share it.
//
// A Semaphore owns its mapping and an open file descriptor (used by Owner);
// Close releases both, and the caller must call it (there is no finalizer).
// Its methods are safe for concurrent use by many goroutines, including
// Close: a call that races with Close either completes normally or returns
// an error matching ErrClosed, and never touches the unmapped memory. Close
// wakes every Wait blocked on this Semaphore, which then returns ErrClosed
// (or nil, if it finds a token as it wakes). Other handles of the same name,
// in this or other processes, are not affected by Close.
//
// A Semaphore must not be copied.
type Semaphore struct {
	state   atomic.Uint64  // stateClosed | calls in progress * stateRefOne
	data    *atomic.Uint64 // the mapped data word: value | nwaiters<<32
	private *atomic.Uint32 // the mapped private word
	mem     []byte         // the mapping, for munmap
	fd      int            // the file, for fstat
	name    string         // "/" + name without leading slashes

	drained chan struct{} // closed by the last call that leaves after Close began
	closed  chan struct{} // closed when Close has finished

	sleeps atomic.Uint64 // futex waits entered by Wait; read by tests

	// beforeSleep, if set (only by tests, before any Wait), runs after a
	// waiter's last look at its context and the closed bit and before it
	// enters the kernel: the window in which a wake-up is lost.
	beforeSleep func()
}

// newSemaphore wraps an open, mapped and validated file.
func newSemaphore(name string, fd int, mem []byte) *Semaphore {
	data, private := words(mem)
	return &Semaphore{
		data:    data,
		private: private,
		mem:     mem,
		fd:      fd,
		name:    name,
		drained: make(chan struct{}),
		closed:  make(chan struct{}),
	}
}

// Name returns the semaphore's name in canonical form: one '/' followed by
// the name given to Create, Open or OpenOrCreate without its leading
// slashes. It is valid after Close.
func (s *Semaphore) Name() string { return s.name }

// acquire registers a call in progress; it fails once Close has begun.
func (s *Semaphore) acquire() bool {
	for {
		old := s.state.Load()
		if old&stateClosed != 0 {
			return false
		}
		if s.state.CompareAndSwap(old, old+stateRefOne) {
			return true
		}
	}
}

// release ends a call in progress. Once Close has begun no call can start,
// so the count reaches zero with the closed bit set exactly once.
func (s *Semaphore) release() {
	if s.state.Add(^uint64(stateRefOne-1)) == stateClosed {
		close(s.drained)
	}
}

func (s *Semaphore) closedError(op string) error {
	return fmt.Errorf("%s semaphore %q: %w", op, s.name, ErrClosed)
}

// Post increments the value and, if a waiter is recorded, wakes one, as
// glibc's sem_post does: no system call when no process waits. At ValueMax
// it returns an error matching ErrOverflow and leaves the value unchanged.
// If the wake-up itself fails (it cannot while the mapping is valid), the
// value has still been incremented.
func (s *Semaphore) Post() (err error) {
	if !s.acquire() {
		return s.closedError("post")
	}
	defer s.release()
	defer catchFault(s, "post", &err, debug.SetPanicOnFault(true))
	d := s.data.Load()
	for {
		if uint32(d) >= ValueMax {
			return fmt.Errorf("post semaphore %q: %w", s.name, ErrOverflow)
		}
		if s.data.CompareAndSwap(d, d+1) {
			break
		}
		d = s.data.Load()
	}
	if d>>32 != 0 {
		if e := futexWake(s.data, 1); e != 0 {
			return fmt.Errorf("post semaphore %q: value incremented but wake failed: %w", s.name, os.NewSyscallError("futex", e))
		}
	}
	return nil
}

// catchFault is deferred by every method that touches the mapped words,
// after debug.SetPanicOnFault(true) (whose previous setting is old): if
// the semaphore's file was truncated while mapped, the access faults, and
// instead of the process dying of SIGBUS (what C does) the method returns
// an error matching ErrInvalid. Any other panic goes on.
func catchFault(s *Semaphore, op string, err *error, old bool) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		*err = fmt.Errorf("%s semaphore %q: its file was truncated or replaced while in use (memory fault): %w", op, s.name, ErrInvalid)
		return
	}
	panic(r)
}

// TryWait decrements the value if it is positive and reports whether it did.
// It never blocks.
func (s *Semaphore) TryWait() (ok bool, err error) {
	if !s.acquire() {
		return false, s.closedError("trywait")
	}
	defer s.release()
	defer catchFault(s, "trywait", &err, debug.SetPanicOnFault(true))
	return s.tryTake(), nil
}

// tryTake decrements a positive value; it retries until the answer is
// definite, as glibc's sem_trywait does.
func (s *Semaphore) tryTake() bool {
	d := s.data.Load()
	for uint32(d) != 0 {
		if s.data.CompareAndSwap(d, d-1) {
			return true
		}
		d = s.data.Load()
	}
	return false
}

// Value returns the current value, as sem_getvalue does (waiters are not
// counted; the value is never negative). It may be stale by the time the
// caller looks at it.
func (s *Semaphore) Value() (v uint32, err error) {
	if !s.acquire() {
		return 0, s.closedError("getvalue")
	}
	defer s.release()
	defer catchFault(s, "getvalue", &err, debug.SetPanicOnFault(true))
	return uint32(s.data.Load()), nil
}

// Waiters returns the nwaiters half of the data word: how many waiters, in
// all processes, have registered and not yet left. A process killed while
// waiting stays counted for ever; that only costs posts an extra FUTEX_WAKE.
// It is meant for diagnostics and tests.
func (s *Semaphore) Waiters() (n uint32, err error) {
	if !s.acquire() {
		return 0, s.closedError("read waiters of")
	}
	defer s.release()
	defer catchFault(s, "read waiters of", &err, debug.SetPanicOnFault(true))
	return uint32(s.data.Load() >> 32), nil
}

// Check verifies the mapped words still describe a process-shared glibc
// semaphore: the private word is 0x80 and the value at most ValueMax. A
// failure matches ErrInvalid; someone with write access to the file
// corrupted it.
func (s *Semaphore) Check() (err error) {
	if !s.acquire() {
		return s.closedError("check")
	}
	defer s.release()
	defer catchFault(s, "check", &err, debug.SetPanicOnFault(true))
	return checkWords(s.name, s.data.Load(), s.private.Load())
}

func checkWords(name string, data uint64, private uint32) error {
	if private != futexShared {
		return fmt.Errorf("semaphore %q: private word is %#x, want %#x (a process-shared semaphore; C would use private futex ops and miss wake-ups from other processes): %w",
			name, private, futexShared, ErrInvalid)
	}
	if v := uint32(data); v > ValueMax {
		return fmt.Errorf("semaphore %q: value %#x exceeds SEM_VALUE_MAX %#x: %w", name, v, ValueMax, ErrInvalid)
	}
	return nil
}

// Wait decrements the value, blocking while it is zero, with glibc's
// sem_wait algorithm: a positive value is taken with one compare-and-swap
// and no allocation, goroutine or system call; otherwise the caller
// registers as a waiter in the shared word and sleeps on a shared futex,
// which sem_post in C or Post in Go wakes.
//
// If ctx is already done, Wait returns ctx.Err() without taking a token,
// even when one is available. If ctx ends while Wait sleeps, Wait returns
// ctx.Err() within a few milliseconds: the kernel ends the sleep at ctx's
// deadline (the futex wait carries the remaining time), and for a
// cancellation a function registered with context.AfterFunc wakes the
// futex, repeating the wake every millisecond until the waiter
// acknowledges, so a wake sent just before the waiter entered the kernel is
// not lost. When the deadline has passed Wait returns
// context.DeadlineExceeded even if ctx's own timer has not fired yet. A
// sleeping Wait does not poll: it wakes only for posts, for its context,
// for Close and for spurious wake-ups. A Wait with a context that cannot end
// (Done returns nil, like context.Background) uses no extra goroutine or
// allocation. A token that is available when the waiter wakes is taken even
// if ctx ended meanwhile, so a wake-up meant for this waiter is never lost.
//
// Close wakes a blocked Wait, which returns an error matching ErrClosed.
// The waiter's registration in the nwaiters half of the word is undone on
// every way out. While blocked, Wait occupies one OS thread.
func (s *Semaphore) Wait(ctx context.Context) (err error) {
	done := ctx.Done()
	if done != nil {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
	}
	if !s.acquire() {
		return s.closedError("wait")
	}
	defer s.release()
	defer catchFault(s, "wait", &err, debug.SetPanicOnFault(true))
	if !s.tryTake() {
		return s.waitSlow(ctx, done)
	}
	return nil
}

// WaitTimeout decrements the value, sleeping while it is zero for at most
// d, and reports whether it did (false: d passed first; d <= 0 only tries).
// It takes no context and allocates nothing, where a Wait whose context can
// end registers a wake-up per sleep: it is for hot paths that arrange their
// own wake-ups with Post. Like Wait, it takes a token it finds as it wakes,
// undoes its registration as a waiter on every way out, and returns an
// error matching ErrClosed when Close wakes it. Since every sleep is
// bounded, a semaphore whose file was truncated (a futex no wake-up can
// reach) holds it at most d, after which it returns ErrInvalid.
func (s *Semaphore) WaitTimeout(d time.Duration) (ok bool, err error) {
	if !s.acquire() {
		return false, s.closedError("wait")
	}
	defer s.release()
	defer catchFault(s, "wait", &err, debug.SetPanicOnFault(true))
	if s.tryTake() {
		return true, nil
	}
	if d <= 0 {
		return false, nil
	}
	deadline := time.Now().Add(d)
	w := s.data.Add(waiterOne)
	for {
		if uint32(w) != 0 {
			if s.data.CompareAndSwap(w, w-1-waiterOne) {
				return true, nil
			}
			w = s.data.Load()
			continue
		}
		if s.state.Load()&stateClosed != 0 {
			s.data.Add(waiterDec)
			return false, s.closedError("wait")
		}
		left := time.Until(deadline)
		if left <= 0 {
			s.data.Add(waiterDec)
			return false, nil
		}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		if s.beforeSleep != nil {
			s.beforeSleep()
		}
		s.sleeps.Add(1)
		switch e := futexWaitValueZero(s.data, &ts); e {
		case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
		default:
			s.data.Add(waiterDec)
			return false, fmt.Errorf("wait semaphore %q: %w", s.name, os.NewSyscallError("futex", e))
		}
		w = s.data.Load()
	}
}

// waitSlow is sem_wait's slow path (nptl/sem_waitcommon.c,
// __new_sem_wait_slow) with cancellation. The caller holds a reference.
func (s *Semaphore) waitSlow(ctx context.Context, done <-chan struct{}) error {
	var deadline time.Time
	hasDeadline := false
	if done != nil {
		deadline, hasDeadline = ctx.Deadline()
		ack := make(chan struct{})
		stop := context.AfterFunc(ctx, func() { s.wakeUntil(ack) })
		defer func() {
			close(ack)
			stop()
		}()
	}
	d := s.data.Add(waiterOne)
	for {
		if uint32(d) != 0 {
			// Take a token and deregister in one step.
			if s.data.CompareAndSwap(d, d-1-waiterOne) {
				return nil
			}
			d = s.data.Load()
			continue
		}
		if s.state.Load()&stateClosed != 0 {
			s.data.Add(waiterDec)
			return s.closedError("wait")
		}
		var timeout *unix.Timespec
		if done != nil {
			select {
			case <-done:
				s.data.Add(waiterDec)
				return ctx.Err()
			default:
			}
			// A cancellable wait sleeps at most maxSlice at a time: the
			// canceller's wake-up cannot reach a futex whose file was
			// truncated under us (the page is gone), and this bound is
			// what then ends the wait, with an error (catchFault).
			slice := maxSlice
			if hasDeadline {
				// The kernel ends the sleep at the deadline itself, so a
				// timeout does not wait for the context's timer goroutine.
				left := time.Until(deadline)
				if left <= 0 {
					s.data.Add(waiterDec)
					if err := ctx.Err(); err != nil {
						return err
					}
					return context.DeadlineExceeded
				}
				slice = min(slice, left)
			}
			ts := unix.NsecToTimespec(slice.Nanoseconds())
			timeout = &ts
		}
		if s.beforeSleep != nil {
			s.beforeSleep()
		}
		s.sleeps.Add(1)
		switch e := futexWaitValueZero(s.data, timeout); e {
		case 0, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
			// Woken, the value changed before we slept, a signal, or the
			// deadline: look again.
		default:
			s.data.Add(waiterDec)
			return fmt.Errorf("wait semaphore %q: %w", s.name, os.NewSyscallError("futex", e))
		}
		d = s.data.Load()
	}
}

// wakeUntil runs when a waiter's context ends: it wakes the futex (every
// sleeper on it: a waiter cannot be targeted, and the others re-check and
// sleep again) and repeats every cancelRewake until the waiter closes ack,
// because a wake sent between the waiter's look at its context and its
// entry into the kernel is lost. It holds a reference so the mapping stays
// valid; once Close has begun it does nothing, since Close does the waking.
func (s *Semaphore) wakeUntil(ack <-chan struct{}) {
	if !s.acquire() {
		return
	}
	defer s.release()
	var t *time.Timer
	for {
		select {
		case <-ack:
			return
		default:
		}
		futexWake(s.data, wakeAll)
		if t == nil {
			t = time.NewTimer(cancelRewake)
			defer t.Stop()
		} else {
			t.Reset(cancelRewake)
		}
		select {
		case <-ack:
			return
		case <-t.C:
		}
	}
}

// Close unmaps the semaphore and closes its file; the semaphore itself (the
// file under /dev/shm) stays until Unlink. Close marks the Semaphore closed
// at once, so calls that start later return ErrClosed. It wakes every Wait
// blocked on this Semaphore: each takes back its registration as a waiter
// and returns ErrClosed (or nil if it finds a token as it wakes). Waiters in
// other processes or on other handles wake spuriously and sleep again.
// Close waits for calls in progress to leave before unmapping. It is
// idempotent: later calls wait for the first to finish and return nil.
func (s *Semaphore) Close() error {
	old := s.state.Or(stateClosed)
	if old&stateClosed != 0 {
		<-s.closed
		return nil
	}
	if old != 0 {
		s.drain()
	}
	err := errors.Join(unix.Munmap(s.mem), os.NewSyscallError("close", unix.Close(s.fd)))
	close(s.closed)
	if err != nil {
		return fmt.Errorf("close semaphore %q: %w", s.name, err)
	}
	return nil
}

// drain wakes the futex until every call in progress has left. Only Waits
// can stay long, and each leaves once woken after the closed bit is set; the
// wake is repeated because one sent just before a waiter entered the kernel
// is lost.
func (s *Semaphore) drain() {
	t := time.NewTimer(cancelRewake)
	defer t.Stop()
	for {
		futexWake(s.data, wakeAll)
		select {
		case <-s.drained:
			return
		case <-t.C:
			t.Reset(cancelRewake)
		}
	}
}
