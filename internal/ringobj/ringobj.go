// Package ringobj names and manages the operating-system objects of one
// ring (README, "Objects of one ring"): the SysV segment, the four
// glibc-compatible semaphores and the role lock file. It is shared by the
// producer, consumer and gc code, which must agree on every name.
package ringobj

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

// Names are the names of a ring's objects.
type Names struct {
	Ring     string // NAME
	Key      int    // SysV key of the segment
	Filled   string // semaphore: items were published (consumer's doorbell)
	Empty    string // semaphore: slots were released (producer's doorbell)
	Ready    string // semaphore: the ring is initialised (first consumer's doorbell)
	Shutdown string // semaphore: the consumer drained the stream (producer's doorbell)
	Lock     string // path of the role lock file
}

// For returns the names of ring name's objects, or an error that states
// the NAME rule.
func For(name string) (Names, error) {
	key, err := shm.KeyForName(name)
	if err != nil {
		return Names{}, err
	}
	p := "/shmpc." + name + "."
	return Names{
		Ring:     name,
		Key:      key,
		Filled:   p + "filled",
		Empty:    p + "empty",
		Ready:    p + "ready",
		Shutdown: p + "shutdown",
		Lock:     "/dev/shm/shmpc." + name + ".lock",
	}, nil
}

// SemNames returns the four semaphore names in the order filled, empty,
// ready, shutdown.
func (n Names) SemNames() []string {
	return []string{n.Filled, n.Empty, n.Ready, n.Shutdown}
}

// Files returns the paths of every file-system object of the ring: the
// four semaphore files and the lock file.
func (n Names) Files() []string {
	var out []string
	for _, s := range n.SemNames() {
		if p, err := sem.Path(s); err == nil {
			out = append(out, p)
		}
	}
	return append(out, n.Lock)
}

// Leftovers lists which of the ring's objects exist: file paths, and
// "segment key 0x..." when a segment has the ring's key. An empty list
// means nothing of the ring remains.
func Leftovers(n Names) ([]string, error) {
	var out []string
	for _, p := range n.Files() {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return out, err
		}
	}
	if _, err := shm.Lookup(n.Key); err == nil {
		out = append(out, fmt.Sprintf("segment key %#x", n.Key))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	return out, nil
}

// ClaimRole takes role of ring n's lock file by lockfile.Claim's rules,
// creating the file (with exactly perm) when create is set. A file that
// must be ours (uid >= 0) is refused when another uid owns it or its mode
// grants more than perm. Errors match ErrBusy when a live process holds
// the role or a cleaner held the file too long, ErrForeign for a file that
// is not ours, and fs.ErrNotExist when it is missing and create is not set.
func ClaimRole(n Names, role lockfile.Role, create bool, perm os.FileMode, uid int) (*lockfile.File, error) {
	l, err := lockfile.Claim(n.Lock, role, lockfile.ClaimOptions{Create: create, Perm: perm, UID: uid})
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, lockfile.ErrForeign):
		return nil, fmt.Errorf("ring %s: %w (%w)", n.Ring, err, ErrForeign)
	case errors.Is(err, lockfile.ErrCleaning):
		return nil, fmt.Errorf("ring %s: %w (%w)", n.Ring, err, ErrBusy)
	}
	return nil, err
}

// LeaveLockFile is how a side that leaves lets go of ring n's lock file
// l: it gives up its own role, then removes the file if it can take the
// gate and both roles at once (see lockfile) and the ring has no segment
// left (or force: the caller created the file in this run, so no ring
// depended on it).
//
// Two sides leaving at once must not both leave the file behind. Each
// gives its role up before it tries, and a try that finds the gate taken
// (the other side in the middle of its own try, or a claimant for a
// moment) is always repeated, for up to leaveGateWait: the gate is held
// only for a few system calls. So of two leaving sides, either the first
// try finds the other's role already free, or the other's try comes after
// the first let the gate go and finds both roles free. A try that finds a
// role held is repeated only for up to wait (a drained consumer lets its
// role go a moment after the producer wakes); it stops early once the
// file left the path (the other side removed it). It does not close l.
func LeaveLockFile(l *lockfile.File, n Names, role lockfile.Role, force bool, wait time.Duration) error {
	if err := l.Unlock(role); err != nil {
		return err
	}
	if stale, err := l.Stale(); err == nil && stale {
		return nil // already removed (a drained consumer meets this at Close)
	}
	start := time.Now()
	step := 200 * time.Microsecond
	var undo func()
	for {
		var err error
		undo, err = l.LockAll()
		if err == nil {
			break
		}
		if !errors.Is(err, lockfile.ErrHeld) {
			return err
		}
		if stale, serr := l.Stale(); serr == nil && stale {
			return nil // removed by the other side
		}
		limit := wait
		if errors.Is(err, lockfile.ErrGateHeld) {
			limit = max(wait, leaveGateWait)
		}
		if time.Since(start) >= limit {
			return nil // a live owner (or a cleaner) has it
		}
		time.Sleep(step)
		step = min(2*step, 10*time.Millisecond)
	}
	defer undo()
	if !force {
		if _, err := shm.Lookup(n.Key); err == nil {
			return nil // the ring's segment is there: its lock file stays
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	_, err := l.RemoveLocked()
	return err
}

// leaveGateWait bounds how long a leaving side retries while the gate is
// held by another process (see LeaveLockFile). The gate is held for
// microseconds; a cleaner that holds it longer is itself removing the
// ring, so giving up after this leaves nothing that gc would not remove.
const leaveGateWait = 2 * time.Second

// CheckSegment refuses a segment at ring n's key that is not ours: owned
// or created by another uid than uid (a creator can hand a segment to
// another uid with IPC_SET, so the owner alone proves nothing), or with a
// mode that grants more than perm. The error matches ErrForeign.
func CheckSegment(n Names, info shm.Info, uid int, perm os.FileMode) error {
	if info.UID != uid || info.CUID != uid {
		return fmt.Errorf("segment key %#x of ring %s is owned by uid %d and was created by uid %d, not ours (uid %d); "+
			"it is not adopted: let its creator remove it, or use another -name: %w",
			n.Key, n.Ring, info.UID, info.CUID, uid, ErrForeign)
	}
	if extra := info.Mode.Perm() &^ perm.Perm(); extra != 0 {
		return fmt.Errorf("segment key %#x of ring %s has mode %#o, which grants %#o beyond %#o; "+
			"remove it (shmpc gc -name %s) or give -perm %#o: %w",
			n.Key, n.Ring, uint32(info.Mode.Perm()), uint32(extra), uint32(perm.Perm()), n.Ring, uint32(info.Mode.Perm()|perm.Perm()), ErrForeign)
	}
	return nil
}

// Sems are a ring's four semaphores, open.
type Sems struct {
	Filled, Empty, Ready, Shutdown *sem.Semaphore
}

// OpenSems opens the ring's semaphores, creating those that are missing
// with value 0 and exactly perm when create is set. Each must be owned by
// uid and no looser than perm; anything else is refused (a squatter's
// object is never adopted). On error nothing stays open; semaphores this
// call created are unlinked.
func OpenSems(n Names, create bool, perm os.FileMode, uid int) (*Sems, error) {
	var s Sems
	ptrs := []**sem.Semaphore{&s.Filled, &s.Empty, &s.Ready, &s.Shutdown}
	var created []string
	fail := func(err error) (*Sems, error) {
		s.Close()
		for _, name := range created {
			_ = sem.Unlink(name)
		}
		return nil, err
	}
	for i, name := range n.SemNames() {
		var x *sem.Semaphore
		var err error
		if create {
			x, err = sem.Create(name, 0, perm)
			if err == nil {
				created = append(created, name)
			} else if errors.Is(err, fs.ErrExist) {
				x, err = openOwned(name, uid)
			}
		} else {
			x, err = openOwned(name, uid)
		}
		if err != nil {
			return fail(fmt.Errorf("open semaphore %s: %w", name, err))
		}
		*ptrs[i] = x
		if err := x.CheckOwner(uid, perm); err != nil {
			return fail(fmt.Errorf("semaphore %s: %w", name, err))
		}
	}
	return &s, nil
}

// openOwned opens an existing semaphore after a look at its file's owner,
// so a squatter's file is refused before it is mapped (CheckOwner, after
// the open, is the check that counts: the file can change in between).
func openOwned(name string, uid int) (*sem.Semaphore, error) {
	if p, err := sem.Path(name); err == nil {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err == nil && int(st.Uid) != uid {
			return nil, fmt.Errorf("semaphore %s is owned by uid %d, not %d; it is not adopted: let its owner remove it, or use another -name: %w",
				name, st.Uid, uid, sem.ErrForeignOwner)
		}
	}
	return sem.Open(name)
}

// Close closes the semaphores (it does not unlink them). It is
// idempotent and safe on a partly opened set.
func (s *Sems) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, x := range []*sem.Semaphore{s.Filled, s.Empty, s.Ready, s.Shutdown} {
		if x != nil {
			errs = append(errs, x.Close())
		}
	}
	return errors.Join(errs...)
}

// UnlinkSems removes the ring's semaphore files; missing ones are fine.
func UnlinkSems(n Names) error {
	var errs []error
	for _, name := range n.SemNames() {
		if err := sem.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unlink semaphore %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Bell is one direction's doorbell: a word in the ring that says the
// other side is (about to be) asleep, and the semaphore it sleeps on.
// Indices in the ring are the truth (indices are the truth, semaphores doorbells); the bell only
// wakes. Ring posts only when the sleeper flagged itself, and at most once
// per flag, so a semaphore's count stays bounded (at most one stale post)
// and no futex call is made while the other side is awake.
//
// A Bell has one sleeper at a time and any number of ringers.
//
// Sleeps and Wakes are optional counter words (the ring's live counters,
// e.g. ring.Ring.ProducerSleeps): each process fills in only the words it
// owns, so a side's Bell for its own sleeps carries its Sleeps word and its
// Bell for waking the peer carries its Wakes word. Nil counts nothing.
type Bell struct {
	Waiting *atomic.Uint32
	Sem     *sem.Semaphore
	// Sleeps, if not nil, gets one for each wait of Sleep and SleepArmed on
	// Sem (each a bounded futex wait, unless a post is already there).
	Sleeps *atomic.Uint64
	// Wakes, if not nil, gets one for each post Ring makes. Kick's posts,
	// which a side makes on its own doorbell, are not counted.
	Wakes *atomic.Uint64
}

// Ring wakes the sleeper if it flagged itself.
func (b Bell) Ring() error {
	// Any non-zero value counts as "asleep": a word scribbled to another
	// value costs one spare post, never a lost wake-up.
	if b.Waiting.Load() != 0 && b.Waiting.Swap(0) != 0 {
		if err := b.Sem.Post(); err != nil {
			return err
		}
		count(b.Wakes)
	}
	return nil
}

// count adds one to a counter word, if there is one.
func count(w *atomic.Uint64) {
	if w != nil {
		w.Add(1)
	}
}

// Kick posts the semaphore whatever the flag says: for wake-ups that must
// not depend on a word in shared memory (the peer monitor's, and the
// periodic look of SleepArmed). Each costs at most one spare post, which
// the sleeper's next wait takes (a spurious wake-up).
func (b Bell) Kick() error { return b.Sem.Post() }

// Recheck bounds one sleep of Sleep: a wake-up lost to someone writing the
// doorbell word behind our back is then a delay, not a hang. A sleeper in
// SleepArmed must be kicked at least this often for the same reason.
const Recheck = time.Second

// Sleep returns when ready() is true, or with ctx's error when ctx ends
// first. ready is called again after the flag is raised, so a ring that
// happens between the caller's last look and the sleep is never lost
// (Go's atomics are sequentially consistent: the ringer's publication and
// its load of the flag, and our store of the flag and our look, cannot
// both miss each other). It looks again at least every Recheck even when
// nobody rings, so a flag overwritten by a hostile writer delays a
// wake-up by at most that.
func (b Bell) Sleep(ctx context.Context, ready func() bool) error {
	for !ready() {
		b.Waiting.Store(1)
		if ready() {
			b.Waiting.Store(0)
			return nil
		}
		sctx, cancel := context.WithTimeout(ctx, Recheck)
		count(b.Sleeps)
		err := b.Sem.Wait(sctx)
		cancel()
		b.Waiting.Store(0)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return nil
}

// SleepArmed is Sleep for the hot path: it sleeps on the semaphore in
// bounded waits (sem's WaitTimeout, Recheck each) with no context, timer or
// goroutine of its own, and allocates nothing. The caller arranges the
// other wake-ups and puts their conditions into ready: a Kick when the
// peer's presence changes (the peer monitor, peer.Watcher.Start, does it)
// and one when the caller's context ends (context.AfterFunc, registered
// once per context rather than once per sleep). A wake-up lost to a
// scribbled doorbell word delays the next look by at most Recheck; a
// semaphore whose file was truncated under the sleeper (no post reaches
// it) ends the sleep within Recheck with the semaphore's ErrInvalid.
func (b Bell) SleepArmed(ready func() bool) error {
	for !ready() {
		b.Waiting.Store(1)
		if ready() {
			b.Waiting.Store(0)
			return nil
		}
		count(b.Sleeps)
		_, err := b.Sem.WaitTimeout(Recheck)
		b.Waiting.Store(0)
		if err != nil {
			return err
		}
	}
	return nil
}

// spinCheck is how many looks Spin takes between reads of the clock.
const spinCheck = 64

// Spin looks at ready() for up to d (busy, without sleeping or yielding
// the thread) and reports whether it became true: the spin half of a
// spin-then-block wait. d <= 0 takes one look. It does not allocate.
func Spin(d time.Duration, ready func() bool) bool {
	if ready() {
		return true
	}
	if d <= 0 {
		return false
	}
	deadline := time.Now().Add(d)
	for {
		for range spinCheck {
			if ready() {
				return true
			}
		}
		if !time.Now().Before(deadline) {
			return ready()
		}
	}
}
