package e2e

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/sem"
	"github.com/shmpc/shmpc/shm"
)

// killBoth starts a pair on a long stream with -peer-timeout 30s and kills
// both mid-transfer, in a random order; it returns the stream, the
// manifest and the ring as they were left.
func (tr *Trial) killBoth() (stream, string, *ring.Ring) {
	st := tr.drawStream(true)
	m := tr.file("manifest")
	c, p, r := tr.startPair("", procOpt{}, tr.consume(st, m, "-peer-timeout", "30s"), procOpt{}, tr.produce(st, "-peer-timeout", "30s"))
	k := tr.killPoint(st)
	tr.released(r, c, k, p)
	if tr.intn(2) == 0 {
		p, c = c, p
	}
	p.kill()
	c.kill()
	return st, m, r
}

// damageSem damages the semaphore file at path in one of the ways a
// careless or hostile process could, and says which.
func (tr *Trial) damageSem(path string, live bool) string {
	ways := []string{"truncate-0", "truncate-16"}
	if !live {
		ways = append(ways, "private-word-0", "value-over-max", "symlink", "fifo", "directory")
	} else {
		// Only a file cut below its first page unmaps the words: a shorter
		// cut leaves them readable.
		ways = []string{"truncate-0"}
	}
	how := tr.pick(ways...)
	if strings.HasPrefix(how, "truncate-") {
		var n int64
		fmt.Sscan(strings.TrimPrefix(how, "truncate-"), &n)
		if err := os.Truncate(path, n); err != nil {
			tr.fatalf("truncate %s: %v", path, err)
		}
		return how
	}
	if err := os.Remove(path); err != nil {
		tr.fatalf("remove %s: %v", path, err)
	}
	var err error
	switch how {
	case "private-word-0", "value-over-max":
		b := make([]byte, 32)
		if how == "private-word-0" {
			b[0] = 1 // value 1, private word 0: C would use private futexes
		} else {
			binary.NativeEndian.PutUint32(b, 0xffffffff)
			b[8] = 0x80
		}
		err = os.WriteFile(path, b, 0o600)
	case "symlink":
		err = os.Symlink("/dev/null", path)
	case "fifo":
		err = syscall.Mkfifo(path, 0o600)
	case "directory":
		err = os.Mkdir(path, 0o700)
	}
	if err != nil {
		tr.fatalf("replace %s (%s): %v", path, how, err)
	}
	return how
}

// semAtRest: both sides died; a semaphore file of the ring is then
// truncated or replaced by something that is not a semaphore. A new
// producer and a new consumer refuse the ring with a one-line error,
// without crashing or hanging (a FIFO must not block an open); `gc -name`
// removes every object, the damaged one included.
func semAtRest(tr *Trial) {
	st, m, r := tr.killBoth()
	tail := r.Tail()
	which := tr.pick(tr.names.SemNames()...)
	path, _ := sem.Path(which)
	how := tr.damageSem(path, false)
	tr.variant("%s %s", which, how)
	who := tr.pick("producer", "consumer", "both")
	tr.variant("then a new %s", who)
	var p2, c2 *proc
	if who != "producer" {
		c2 = tr.start("consumer 2", procOpt{}, "consume", "-name", tr.name, "-wait", "1s", "-manifest", tr.file("manifest2"))
	}
	if who != "consumer" {
		p2 = tr.start("producer 2", procOpt{}, "produce", "-name", tr.name, "-hugepages", tr.pages.flag(), "-wait", "1s")
	}
	if p2 != nil {
		p2.wait(hostileBound)
		tr.expectCode(p2, []int{1}, "semaphore")
	}
	if c2 != nil {
		c2.wait(hostileBound)
		tr.expectCode(c2, []int{1, 3})
		tr.delivered("consumer 2", tr.file("manifest2"), st) // whatever it delivered must be good
	}
	got := tr.delivered("consumer", m, st)
	tr.requireAll("the released items", got, 0, tail)
	if how == "directory" {
		// Not a file at all: gc may refuse to remove it (one line, exit 1)
		// or remove it; everything else of the ring must go.
		tr.planted[path] = true
		tr.gcAllow([]int{0, 1})
	} else {
		tr.gc(false)
	}
	tr.checkLeftovers()
}

// semLive: a semaphore file of a live ring is truncated (the processes
// have it mapped: touching it faults), or replaced by a new semaphore or
// by garbage (the processes keep the old one). Expected: the transfer
// goes on or ends with a one-line error; no crash, no hang; nothing left.
func semLive(tr *Trial, truncate bool) {
	st := tr.drawStream(true)
	m := tr.file("manifest")
	c, p, r := tr.startPair("", procOpt{}, tr.consume(st, m, "-wait", "1s"), procOpt{}, tr.produce(st, "-wait", "1s"))
	k := tr.killPoint(st)
	tr.released(r, c, k, p)
	which := tr.pick(tr.names.SemNames()...)
	path, _ := sem.Path(which)
	if truncate {
		tr.variant("%s %s", which, tr.damageSem(path, true))
	} else {
		how := tr.pick("new-semaphore", "garbage")
		tr.variant("%s replaced by %s", which, how)
		tmp := path + ".e2e-tmp"
		var err error
		if how == "garbage" {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			err = os.WriteFile(tmp, b, 0o600)
		} else {
			// A valid semaphore (value 0, shared) made aside, then renamed
			// over the ring's: rename replaces atomically.
			b := make([]byte, 32)
			b[8] = 0x80
			err = os.WriteFile(tmp, b, 0o600)
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			_ = os.Remove(tmp)
			tr.fatalf("replace %s: %v", path, err)
		}
	}
	tr.sleep(tr.live(100*time.Millisecond, 400*time.Millisecond))
	if p.running() {
		p.signal(syscall.SIGTERM)
	}
	p.wait(hostileBound)
	c.wait(hostileBound)
	tr.expectCode(p, []int{0, 1, 3})
	tr.expectCode(c, []int{0, 1, 3})
	tr.delivered("consumer", m, st)
	tr.checkLeftovers()
}

// squatOtherUID: the ring's NAME is squatted. Either objects of another
// uid (a random set of: a segment with the ring's key holding garbage or a
// ring, the semaphores, the lock file; modes from 0600 to 0666) are
// planted and a victim running as nobody tries to produce or consume: it
// is refused with a one-line error within its -wait and the squatter's
// objects are untouched, none of the victim's left. Or a live ring owned
// by nobody is attacked by a process of another uid (produce, consume,
// gc): each is refused or leaves it alone, and the ring completes exactly
// once.
func squatOtherUID(tr *Trial) {
	if tr.pick("planted", "live-ring") == "live-ring" {
		squatLiveRing(tr)
		return
	}
	victim, owner := tr.cfg.victim(), tr.cfg.foreign()
	pl := &planted{name: tr.name, files: map[string]fileMark{}, segID: -1}
	tr.cleanups = append(tr.cleanups, func() { tr.removePlanted(pl, tr.names) })
	modes := []uint32{0o600, 0o640, 0o644, 0o660, 0o666}
	var what []string
	for len(what) == 0 {
		if tr.intn(2) == 0 {
			mode := modes[tr.intn(len(modes))]
			kind := tr.pick("garbage", "ring")
			size, _ := ring.Size(2, 4096)
			seg, err := shm.Create(tr.names.Key, size, shm.Options{HugePages: shm.Off, Lock: shm.Off})
			if err != nil {
				tr.fatalf("plant segment: %v", err)
			}
			pl.segID = seg.ID()
			if kind == "garbage" {
				_, _ = rand.Read(seg.Bytes())
			} else if _, err := ring.Format(seg.Bytes(), ring.Config{Name: tr.name, Slots: 2, SlotSize: 4096, OwnerUID: uint32(owner)}); err != nil {
				tr.fatalf("format planted ring: %v", err)
			}
			_ = seg.Detach()
			if err := chownSeg(pl.segID, owner, mode); err != nil {
				tr.fatalf("chown planted segment: %v", err)
			}
			what = append(what, fmt.Sprintf("segment (%s, %#o)", kind, mode))
		}
		for _, s := range tr.names.SemNames() {
			if tr.intn(3) != 0 {
				continue
			}
			mode := modes[tr.intn(len(modes))]
			x, err := sem.Create(s, 0, os.FileMode(mode))
			if err != nil {
				tr.fatalf("plant semaphore: %v", err)
			}
			x.Close()
			path, _ := sem.Path(s)
			if err := os.Chown(path, owner, owner); err != nil {
				tr.fatalf("chown %s: %v", path, err)
			}
			pl.files[path] = fileMark{}
			what = append(what, fmt.Sprintf("%s (%#o)", s, mode))
		}
		if tr.intn(3) == 0 {
			mode := modes[tr.intn(len(modes))]
			if err := os.WriteFile(tr.names.Lock, nil, 0o600); err != nil {
				tr.fatalf("plant lock file: %v", err)
			}
			if err := os.Chmod(tr.names.Lock, os.FileMode(mode)); err != nil {
				tr.fatalf("chmod lock file: %v", err)
			}
			if err := os.Chown(tr.names.Lock, owner, owner); err != nil {
				tr.fatalf("chown lock file: %v", err)
			}
			pl.files[tr.names.Lock] = fileMark{}
			what = append(what, fmt.Sprintf("lock file (%#o)", mode))
		}
	}
	tr.remember(pl)
	who := tr.pick("producer", "consumer")
	tr.variant("uid %d planted %s; uid %d runs a %s", owner, strings.Join(what, ", "), victim, who)
	var v *proc
	if who == "producer" {
		v = tr.start("victim producer", procOpt{uid: victim}, "produce", "-name", tr.name, "-slots", "2", "-slot-size", "4096",
			"-count", "10", "-hugepages", tr.pages.flag(), "-wait", "1s")
	} else {
		v = tr.start("victim consumer", procOpt{uid: victim}, "consume", "-name", tr.name, "-wait", "1s")
	}
	v.wait(hostileBound)
	tr.expectCode(v, []int{1, 3})
	pl.check(tr)
	tr.checkLeftovers()
}

// squatLiveRing: a ring owned by the victim uid (nobody) is live; a
// process of another uid tries to produce, to consume and to gc it. Each
// attempt is refused (or gc leaves the ring alone), and the ring's own
// consumer then gets the whole stream exactly once.
func squatLiveRing(tr *Trial) {
	owner, attacker := tr.cfg.victim(), tr.cfg.foreign()
	st := tr.drawStream(false)
	tr.variant("uid %d owns a live ring; uid %d attacks it", owner, attacker)
	pargs := tr.produce(st, "-peer-timeout", "30s")
	if tr.pages == Huge {
		// An unprivileged uid may not use huge pages (no CAP_IPC_LOCK, not
		// in vm.hugetlb_shm_group): it is told so, with the fix, and the
		// ring is made of normal pages instead.
		v := tr.start("producer -hugepages on", procOpt{uid: owner}, pargs...)
		v.wait(hostileBound)
		tr.expectCode(v, []int{1}, "vm.hugetlb_shm_group")
		tr.checkLeftovers()
		tr.normalPages = true
		pargs = append(pargs, "-hugepages", "off")
	}
	p := tr.start("producer", procOpt{uid: owner}, pargs...)
	r := tr.observe(p)
	tr.waitFor("the ring to fill", exitBound, full(r), p)
	a := tr.start("attacking producer", procOpt{uid: attacker}, "produce", "-name", tr.name, "-hugepages", tr.pages.flag(), "-wait", "1s")
	a.wait(hostileBound)
	tr.expectCode(a, []int{1})
	a = tr.start("attacking producer -fresh", procOpt{uid: attacker}, "produce", "-name", tr.name, "-fresh", "-hugepages", tr.pages.flag(), "-wait", "1s")
	a.wait(hostileBound)
	tr.expectCode(a, []int{1})
	a = tr.start("attacking consumer", procOpt{uid: attacker}, "consume", "-name", tr.name, "-wait", "1s")
	a.wait(hostileBound)
	tr.expectCode(a, []int{1, 3})
	a = tr.start("attacking gc", procOpt{uid: attacker}, "gc", "-name", tr.name)
	a.wait(hostileBound)
	tr.expectCode(a, []int{0, 1})
	if !p.running() {
		tr.fatalf("the owner's producer died during the attack: %d; stderr:\n%s", p.code(), clip(p.stderr.String(), 1500))
	}
	m := tr.file("manifest")
	c := tr.start("consumer", procOpt{uid: owner}, tr.consume(st, m)...)
	p.wait(finishBound)
	tr.expectCode(p, []int{0})
	c.wait(exitBound)
	tr.expectCode(c, []int{0})
	got := tr.delivered("consumer", m, st)
	tr.requireAll("the stream", got, 0, st.items)
	tr.checkLeftovers()
}

// squatWrongPerm: objects of our own uid whose mode is looser than the
// ring's (a dead ring made with -perm 0666 or 0644, or single planted
// semaphores or a lock file of such modes, or a semaphore file of the
// wrong size). A producer (default -perm 0600) is refused with one line
// and changes nothing; `gc -name`, run by the owner, removes them.
func squatWrongPerm(tr *Trial) {
	pl := &planted{name: tr.name, files: map[string]fileMark{}, segID: -1}
	vargs := []string{"produce", "-name", tr.name, "-hugepages", tr.pages.flag(), "-wait", "1s"}
	switch tr.pick("dead-loose-ring", "planted") {
	case "dead-loose-ring":
		st := tr.drawStream(true)
		perm := tr.pick("0666", "0644", "0660")
		tr.variant("a dead ring made with -perm %s", perm)
		p := tr.start("producer", procOpt{}, tr.produce(st, "-perm", perm)...)
		r := tr.observe(p)
		tr.waitFor("the ring to fill", exitBound, full(r), p)
		p.kill()
		for _, s := range tr.names.SemNames() {
			path, _ := sem.Path(s)
			pl.files[path] = fileMark{}
		}
		pl.files[tr.names.Lock] = fileMark{}
		if info, err := shm.Lookup(tr.names.Key); err == nil {
			pl.segID = info.ID
		}
	default:
		var what []string
		for len(what) == 0 {
			for _, s := range tr.names.SemNames() {
				if tr.intn(2) == 0 {
					continue
				}
				path, _ := sem.Path(s)
				if tr.intn(4) == 0 {
					if err := os.WriteFile(path, make([]byte, 16), 0o600); err != nil {
						tr.fatalf("plant %s: %v", path, err)
					}
					what = append(what, s+" (16 bytes)")
				} else {
					mode := []os.FileMode{0o644, 0o660, 0o666, 0o606}[tr.intn(4)]
					x, err := sem.Create(s, 0, mode)
					if err != nil {
						tr.fatalf("plant semaphore: %v", err)
					}
					x.Close()
					what = append(what, fmt.Sprintf("%s (%#o)", s, mode))
				}
				pl.files[path] = fileMark{}
			}
		}
		tr.variant("planted %s", strings.Join(what, ", "))
		vargs = append(vargs, "-slots", "2", "-slot-size", "4096", "-count", "10")
	}
	tr.remember(pl)
	v := tr.start("producer 2", procOpt{}, vargs...)
	v.wait(hostileBound)
	tr.expectCode(v, []int{1})
	pl.check(tr)
	tr.forget(pl)
	tr.gc(false)
	tr.checkLeftovers()
}
