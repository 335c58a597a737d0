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
		if s.Key == 0 {
			continue
		}
		seg, err := shm.AttachID(s.ID, true, shm.Options{Lock: shm.Off})
		if err != nil {
			continue
		}
		if r, err := ring.Open(seg.Bytes()); err == nil && shm.ValidName(r.Name()) == nil {
			if k, _ := shm.KeyForName(r.Name()); k == s.Key {
				set[r.Name()] = true
			}
		}
		seg.Detach()
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// gcRing removes ring name's objects if no live process holds either of
// its roles. It takes both role locks first (creating the lock file if it
// is missing), so no producer can resume the ring while it judges.
func gcRing(name string, dry bool, out io.Writer) error {
	n, err := ringobj.For(name)
	if err != nil {
		return err
	}
	uid := os.Geteuid()
	mine := func(owner int) bool { return owner == uid || uid == 0 }

	// A dry run only looks (and creates nothing); a real one takes both
	// roles, creating the lock file if it is missing.
	lock, err := lockfile.Open(n.Lock, !dry, 0o600, -1)
	if dry && errors.Is(err, fs.ErrNotExist) {
		lock = nil
	} else if err != nil {
		fmt.Fprintf(out, "%s: left alone: cannot open its lock file: %v\n", name, err)
		return nil
	}
	if lock != nil {
		defer lock.Close()
	}
	for _, role := range []lockfile.Role{lockfile.Producer, lockfile.Consumer} {
		if lock == nil {
			break
		}
		if dry {
			if held, _ := lock.Held(role); held {
				fmt.Fprintf(out, "%s: left alone: its %s is alive\n", name, role)
				return nil
			}
			continue
		}
		if err := lock.TryLock(role); err != nil {
			if errors.Is(err, lockfile.ErrHeld) {
				fmt.Fprintf(out, "%s: left alone: its %s is alive\n", name, role)
				if lock.Created() {
					_ = lock.Remove()
				}
				return nil
			}
			return err
		}
	}

	var what []string
	var errs []error
	// The segment: a ring of this NAME, or an interrupted creation (no
	// valid header, creator dead, nobody attached).
	if info, err := shm.Lookup(n.Key); err == nil {
		verdict, remove := judgeSegment(n, info, mine)
		if remove {
			what = append(what, fmt.Sprintf("segment key %#x (shmid %d, %s)", n.Key, info.ID, verdict))
			if !dry {
				if err := shm.RemoveID(info.ID); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("remove segment of %s: %w", name, err))
				}
			}
		} else {
			fmt.Fprintf(out, "%s: segment key %#x left alone: %s\n", name, n.Key, verdict)
		}
	}
	for _, s := range n.SemNames() {
		x, err := sem.Open(s)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				// Unreadable or malformed: judge by the file's owner.
				if p, perr := sem.Path(s); perr == nil {
					if st, serr := os.Lstat(p); serr == nil && mine(fileUID(st)) {
						what = append(what, "semaphore "+s)
						if !dry {
							errs = append(errs, unlinkIgnoreMissing(s))
						}
					}
				}
			}
			continue
		}
		owner, _, oerr := x.Owner()
		x.Close()
		if oerr == nil && !mine(owner) {
			fmt.Fprintf(out, "%s: semaphore %s left alone: owned by uid %d\n", name, s, owner)
			continue
		}
		what = append(what, "semaphore "+s)
		if !dry {
			errs = append(errs, unlinkIgnoreMissing(s))
		}
	}
	if lock == nil {
		// dry run, no lock file
	} else if lockUID, _, _ := lock.Stat(); mine(lockUID) {
		if !lock.Created() {
			what = append(what, "lock file")
		}
		if !dry || lock.Created() {
			errs = append(errs, lock.Remove())
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

// judgeSegment says whether the segment with ring n's key may be removed,
// and why.
func judgeSegment(n ringobj.Names, info shm.Info, mine func(int) bool) (string, bool) {
	if !mine(info.UID) {
		return fmt.Sprintf("owned by uid %d", info.UID), false
	}
	seg, err := shm.AttachID(info.ID, true, shm.Options{Lock: shm.Off})
	if err != nil {
		return "cannot attach: " + shortErr(err), false
	}
	defer seg.Detach()
	r, err := ring.Open(seg.Bytes())
	if err == nil {
		if r.Name() != n.Ring {
			return fmt.Sprintf("holds ring %q (key collision)", r.Name()), false
		}
		if !mine(int(r.OwnerUID())) {
			return fmt.Sprintf("ring owned by uid %d", r.OwnerUID()), false
		}
		return fmt.Sprintf("%d of %d items released", r.Tail(), r.Head()), true
	}
	// No valid header: an interrupted creation if its creator is gone and
	// nobody else has it attached (our read-only attach is the one).
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
