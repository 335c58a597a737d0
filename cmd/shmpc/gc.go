package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/shmpc/shmpc/internal/lockfile"
	"github.com/shmpc/shmpc/internal/proc"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

func cmdGC(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gc", stderr, "[-dry-run] [-name NAME]")
	dry := fs.Bool("dry-run", false, "print what would be removed, remove nothing")
	only := fs.String("name", "", "judge only the ring NAME")
	if err := parse(fs, args); err != nil {
		return err
	}
	var names []string
	if flagSet(fs, "name") && *only == "" {
		return usagef("-name is empty (an unset variable?): give a ring NAME, or leave -name out to judge every ring")
	}
	if *only != "" {
		if err := shm.ValidName(*only); err != nil {
			return usagef("-name: %v", err)
		}
		names = []string{*only}
	} else {
		var err error
		if names, err = gcCandidates(); err != nil {
			return err
		}
	}
	var errs []error
	for _, name := range names {
		if err := gcRing(name, *dry, stdout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gcCandidates returns every NAME with an object on the machine: a lock or
// semaphore file in /dev/shm, or a segment holding a ring header.
func gcCandidates() ([]string, error) {
	set := ringNames()
	segs, err := shm.List()
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s.Key == 0 || s.UID != s.CUID {
			continue // removed, or handed over by its creator: not a ring of anyone's
		}
		seg, err := shm.AttachID(s.ID, true, shm.Options{Lock: shm.Off})
		if err != nil {
			continue
		}
		guardFault(func() {
			if r, err := ring.Open(seg.Bytes()); err == nil && shm.ValidName(r.Name()) == nil {
				if k, _ := shm.KeyForName(r.Name()); k == s.Key {
					set[r.Name()] = true
				}
			}
		})
		seg.Detach()
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// gcTries bounds how often gcRing starts over because the lock file it
// locked was replaced: each time another process removed the ring and
// made a new one in between.
const gcTries = 100

// gcRing removes ring name's objects if no live process holds either of
// its roles. It takes the lock file's gate and both roles first (creating
// the file if it is missing) and checks that the file it locked is still
// the NAME's, so no producer or consumer can start, resume or leave while
// it judges, and a ring created meanwhile under the NAME is judged by its
// own file (see internal/lockfile).
func gcRing(name string, dry bool, out io.Writer) error {
	n, err := ringobj.For(name)
	if err != nil {
		return err
	}
	var lock *lockfile.File
	if dry {
		// A dry run only looks (and creates nothing).
		lock, err = lockfile.Open(n.Lock, false, 0, -1)
		if errors.Is(err, fs.ErrNotExist) {
			lock = nil
		} else if err != nil {
			fmt.Fprintf(out, "%s: left alone: cannot open its lock file: %v\n", name, err)
			return nil
		}
		if lock != nil {
			defer lock.Close()
			for _, role := range []lockfile.Role{lockfile.Producer, lockfile.Consumer} {
				if held, _ := lock.Held(role); held {
					fmt.Fprintf(out, "%s: left alone: its %s is alive\n", name, role)
					return nil
				}
			}
		}
	} else {
		for try := 0; ; try++ {
			if try == gcTries {
				fmt.Fprintf(out, "%s: left alone: its lock file was replaced %d times while gc looked; run gc again\n", name, gcTries)
				return nil
			}
			// Make the lock file only when something of the ring is
			// there to judge: gc of a NAME with no objects leaves none.
			lock, err = lockfile.Open(n.Lock, false, 0, -1)
			if errors.Is(err, fs.ErrNotExist) {
				if left, lerr := ringobj.Leftovers(n); lerr == nil && len(left) == 0 {
					fmt.Fprintf(out, "%s: nothing to remove: no object of this ring exists\n", name)
					return nil
				}
				lock, err = lockfile.Open(n.Lock, true, 0o600, -1)
			}
			if err != nil {
				fmt.Fprintf(out, "%s: left alone: cannot open its lock file: %v\n", name, err)
				return nil
			}
			if _, err := lock.LockAll(); err != nil {
				if errors.Is(err, lockfile.ErrHeld) {
					fmt.Fprintf(out, "%s: left alone: %s\n", name, whoHolds(lock))
					lock.Close()
					return nil
				}
				lock.Close()
				return err
			}
			if stale, err := lock.Stale(); err != nil || stale {
				// Removed (and maybe made anew) between our open and our
				// locks: judge the NAME's current file instead.
				lock.Close()
				if err != nil {
					return err
				}
				continue
			}
			break
		}
		defer lock.Close()
	}

	mine := ringOwnership(n, lock)
	var what []string
	var errs []error
	// The segment: a ring of this NAME, or an interrupted creation (no
	// valid header, creator dead, nobody attached).
	segmentLeft := false
	if info, err := shm.Lookup(n.Key); err == nil {
		verdict, remove := judgeSegment(n, info, mine)
		switch {
		case !remove:
			segmentLeft = true
			fmt.Fprintf(out, "%s: segment key %#x (shmid %d) left alone: %s\n", name, n.Key, info.ID, verdict)
		case dry:
			what = append(what, fmt.Sprintf("segment key %#x (shmid %d, %s)", n.Key, info.ID, verdict))
		default:
			if err := shm.RemoveID(info.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove segment of %s: %w", name, err))
				segmentLeft = true
			} else {
				what = append(what, fmt.Sprintf("segment key %#x (shmid %d, %s)", n.Key, info.ID, verdict))
			}
		}
	}
	for _, s := range n.SemNames() {
		owner, ok := semOwner(s)
		if !ok {
			continue // missing
		}
		if !mine(owner) {
			fmt.Fprintf(out, "%s: semaphore %s left alone: owned by uid %d\n", name, s, owner)
			continue
		}
		if dry {
			what = append(what, "semaphore "+s)
			continue
		}
		if err := unlinkIgnoreMissing(s); err != nil {
			errs = append(errs, err)
		} else {
			what = append(what, "semaphore "+s)
		}
	}
	if lock != nil && (!segmentLeft || lock.Created()) {
		if lockUID, _, _ := lock.Stat(); mine(lockUID) {
			switch {
			case dry:
				what = append(what, "lock file")
			default:
				removed, err := lock.RemoveLocked()
				if err != nil {
					errs = append(errs, err)
				} else if removed && !lock.Created() {
					what = append(what, "lock file")
				}
			}
		}
	}
	if len(what) > 0 {
		verb := "removed"
		if dry {
			verb = "would remove"
		}
		fmt.Fprintf(out, "%s: %s %s\n", name, verb, strings.Join(what, ", "))
	}
	return errors.Join(errs...)
}

// ringOwnership returns gc's test of whether an object of ring n may be
// removed by uid: its own objects always; root may also remove another
// uid's, but only when every object of the ring (segment owner and
// creator, the lock file unless gc made it, the semaphore files) is that
// one uid's: a ring of mixed owners is someone's attack or accident, and
// root leaves what is not its own alone.
func ringOwnership(n ringobj.Names, lock *lockfile.File) func(owner int) bool {
	uid := os.Geteuid()
	if uid != 0 {
		return func(owner int) bool { return owner == uid }
	}
	owners := map[int]bool{}
	if info, err := shm.Lookup(n.Key); err == nil {
		owners[info.UID], owners[info.CUID] = true, true
	}
	if lock != nil && !lock.Created() {
		if u, _, err := lock.Stat(); err == nil {
			owners[u] = true
		}
	}
	for _, s := range n.SemNames() {
		if u, ok := semOwner(s); ok {
			owners[u] = true
		}
	}
	return func(owner int) bool { return owner == uid || (len(owners) == 1 && owners[owner]) }
}

// whoHolds says which lock of a ring's lock file another process holds,
// for gc's "left alone" line.
func whoHolds(l *lockfile.File) string {
	for _, role := range []lockfile.Role{lockfile.Producer, lockfile.Consumer} {
		if held, _ := l.Held(role); held {
			return "its " + role.String() + " is alive"
		}
	}
	return "a process is starting on it or removing it; run gc again"
}

// semOwner returns the uid owning semaphore name's file; ok is false when
// there is none. It looks at the file with lstat and does not map it.
func semOwner(name string) (uid int, ok bool) {
	p, err := sem.Path(name)
	if err != nil {
		return 0, false
	}
	st, err := os.Lstat(p)
	if err != nil {
		return 0, false
	}
	return fileUID(st), true
}

// judgeSegment says whether the segment with ring n's key may be removed,
// and why. Only a segment that is entirely one uid's (owner and creator:
// a creator can hand a segment to another uid) and that uid ours (or we
// are root) is considered; of those, a ring of this NAME whose header
// names the same owner, or an interrupted creation (magic never written,
// creator dead, nobody else attached). Anything else (another layout
// version, foreign magic, a corrupt header) is not ours to judge.
func judgeSegment(n ringobj.Names, info shm.Info, mine func(int) bool) (string, bool) {
	if info.UID != info.CUID {
		return fmt.Sprintf("owned by uid %d but created by uid %d (handed over), not a ring of ours; its owner can remove it with ipcrm -m %d", info.UID, info.CUID, info.ID), false
	}
	if !mine(info.UID) {
		return fmt.Sprintf("owned by uid %d; run gc as that user", info.UID), false
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return "cannot attach: " + shortErr(err), false
	}
	defer seg.Detach()
	var r *ring.Ring
	if guardFault(func() { r, err = ring.Open(seg.Bytes()) }) {
		return "reading it faulted (a huge-page segment without reserved pages?); remove it with ipcrm -m " + fmt.Sprint(info.ID) + " if it is yours and unused", false
	}
	if err == nil {
		if r.Name() != n.Ring {
			return fmt.Sprintf("holds ring %q (key collision)", r.Name()), false
		}
		if int(r.OwnerUID()) != info.UID {
			return fmt.Sprintf("its header names owner uid %d, the segment is uid %d's; not removed", r.OwnerUID(), info.UID), false
		}
		return fmt.Sprintf("%d of %d items released", r.Tail(), r.Head()), true
	}
	if !errors.Is(err, ring.ErrNotFormatted) {
		return fmt.Sprintf("not a ring this shmpc can read (%s); if it is yours and unused, remove it with ipcrm -m %d", shortErr(err), info.ID), false
	}
	// No header was ever written: an interrupted creation if its creator
	// is gone and nobody else has it attached (our read-only attach is
	// the one).
	if _, perr := proc.StartTime(info.CreatorPID); perr == nil {
		return "no valid header, but its creator (pid " + fmt.Sprint(info.CreatorPID) + ") is alive", false
	}
	if now, err := shm.StatID(info.ID); err == nil && now.Attached > 1 {
		return "no valid header, but attached by another process", false
	}
	return "interrupted creation: " + shortErr(err), true
}

func unlinkIgnoreMissing(name string) error {
	if err := sem.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
