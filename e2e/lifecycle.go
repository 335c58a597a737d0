package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// The lifecycle family (issue 12): starts, teardown and gc racing each
// other on one NAME, and another uid handing objects over at its names.
// Its cells are LiveDamaged (a live ring lost an object, or its stream an
// item), DoubleOwners (two live holders of one role, or a refused claimant
// that took part) and Adopted (a foreign object written, removed or used).

// chaosRun is one command the background chaos loop ran.
type chaosRun struct {
	args           []string
	code           int
	stdout, stderr string
	at             time.Duration // since the trial started
}

// chaos runs `gc -name NAME`, `gc -dry-run` and `ls -json` in a loop, at
// random moments, while a trial's scenario runs: the racers of teardown
// and creation. (A real `gc` without -name would also judge the rings of
// trials running at once and of other programs on the machine, which the
// suite never touches; `gc -dry-run` takes the same global scan.) It has
// its own goroutine and random source and touches no Trial state: the
// scenario judges its runs after stop.
type chaos struct {
	tr   *Trial
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	runs []chaosRun
}

func (tr *Trial) startChaos() *chaos {
	ch := &chaos{tr: tr, stop: make(chan struct{}), done: make(chan struct{})}
	rng := mrand.New(mrand.NewPCG(tr.rng.Uint64(), tr.rng.Uint64()))
	bin, dir, start0 := tr.cfg.Binary, tr.dir, tr.start0
	kinds := [][]string{{"gc", "-name", tr.name}, {"gc", "-name", tr.name}, {"gc", "-dry-run"}, {"ls", "-json"}}
	go func() {
		defer close(ch.done)
		for {
			select {
			case <-ch.stop:
				return
			default:
			}
			args := kinds[rng.IntN(len(kinds))]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c := exec.CommandContext(ctx, bin, args...)
			c.Dir = dir
			c.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
			c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var out, errb strings.Builder
			c.Stdout, c.Stderr = &out, &errb
			at := time.Since(start0)
			err := c.Run()
			hung := ctx.Err() != nil
			cancel()
			code := 0
			if err != nil {
				code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				if hung {
					code = -2 // killed after 30 s
				}
			}
			ch.mu.Lock()
			ch.runs = append(ch.runs, chaosRun{args: args, code: code, stdout: out.String(), stderr: errb.String(), at: at})
			ch.mu.Unlock()
			time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		}
	}()
	return ch
}

// removedRE finds gc's report of what it removed (or would remove).
var removedRE = regexp.MustCompile(`(?m)^(\S+): (would remove|removed) (.*)$`)

// end stops the loop and judges every run: each exited 0 without a crash;
// gc never removed (or offered to remove) an object of the trial's ring,
// which always had a live owner or nothing left to remove; ls never showed
// a live owner of the ring other than the processes in owners (pids).
func (ch *chaos) end(owners map[int]bool) {
	tr := ch.tr
	close(ch.stop)
	select {
	case <-ch.done:
	case <-time.After(40 * time.Second):
		tr.fatalf("hang: the chaos loop did not stop within 40s")
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	counts := map[string]int{}
	for _, r := range ch.runs {
		what := r.args[0]
		if len(r.args) > 1 {
			what += " " + r.args[1]
		}
		counts[what]++
		for _, m := range panicMarkers {
			if strings.Contains(r.stderr, m) {
				tr.failf("%s at %v crashed (%q):\n%s", strings.Join(r.args, " "), r.at, m, clip(r.stderr, 1500))
			}
		}
		if r.code != 0 {
			tr.failf("%s at %v exited %d: %s", strings.Join(r.args, " "), r.at, r.code, clip(r.stderr, 500))
			continue
		}
		switch r.args[0] {
		case "gc":
			for _, m := range removedRE.FindAllStringSubmatch(r.stdout, -1) {
				if m[1] != tr.name {
					continue
				}
				// The ring's segment and semaphores always had a live
				// owner (who removes them before it lets its role go). A
				// lock file with no holder, met between a finished ring's
				// last owner leaving and its removal of the file, is
				// fair game; a dry run's view is a snapshot without locks.
				if m[2] == "removed" && (strings.Contains(m[3], "segment") || strings.Contains(m[3], "semaphore")) {
					tr.res.LiveDamaged++
					tr.failf("%s at %v: %q while the ring had a live owner", strings.Join(r.args, " "), r.at, m[0])
				} else {
					tr.logf("%s at %v: %s", strings.Join(r.args, " "), r.at, m[0])
				}
			}
		case "ls":
			for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
				var e lsEntry
				if json.Unmarshal([]byte(line), &e) != nil || e.Name != tr.name {
					continue
				}
				if e.ProducerAlive && e.ProducerPID != 0 && !owners[e.ProducerPID] {
					tr.res.DoubleOwners++
					tr.failf("ls at %v: producer pid %d alive, not one of the ring's rightful producers", r.at, e.ProducerPID)
				}
				if e.ConsumerAlive && e.ConsumerPID != 0 && !owners[e.ConsumerPID] {
					tr.res.DoubleOwners++
					tr.failf("ls at %v: consumer pid %d alive, not one of the ring's rightful consumers", r.at, e.ConsumerPID)
				}
			}
		}
	}
	tr.logf("chaos ran %v", counts)
}

// ownerPIDRE reads the pid a refusal names: "already has a live producer (pid N)".
var ownerPIDRE = regexp.MustCompile(`already has a live (producer|consumer) \(pid (\d+)\)`)

// refused checks a claimant that must have been refused because role was
// held by the process with pid owner: exit 1 with one line saying so (and
// naming owner if it names a pid). Anything else is a second owner.
func (tr *Trial) refused(p *proc, role string, owner int) {
	if code := p.wait(30 * time.Second); code == 0 {
		tr.res.DoubleOwners++
		tr.failf("%s (pid %d) was not refused: it exited 0 while %d held the %s role", p.role, p.pid(), owner, role)
		return
	}
	line := tr.expectCode(p, []int{1}, "already has a live "+role)
	if m := ownerPIDRE.FindStringSubmatch(line); m != nil {
		if pid, _ := strconv.Atoi(m[2]); pid != owner {
			tr.res.DoubleOwners++
			tr.failf("%s was refused naming pid %d as the %s, but %d holds the role", p.role, pid, role, owner)
		}
	}
	if strings.Contains(p.stderr.String(), "resuming ring") {
		tr.res.DoubleOwners++
		tr.failf("%s resumed the ring while %d held the %s role", p.role, owner, role)
	}
}

// startRace: K = 2..8 producers start at once on a fresh NAME while gc
// and ls run in a loop. Exactly one wins; the others are refused with one
// line; a consumer then gets the winner's whole stream exactly once.
func startRace(tr *Trial) {
	st := tr.drawStream(false)
	k := 2 + tr.intn(7)
	tr.variant("%d producers start at once", k)
	ch := tr.startChaos()
	ps := make([]*proc, k)
	for i := range ps {
		ps[i] = tr.start(fmt.Sprintf("producer %d", i), procOpt{}, tr.produce(st, "-wait", "20s")...)
	}
	// The ring fills and the winner waits for a consumer: the losers have
	// all exited by then.
	tr.waitFor("all producers but one to exit", exitBound, func() bool {
		running := 0
		for _, p := range ps {
			if p.running() {
				running++
			}
		}
		return running <= 1
	})
	var winner *proc
	for _, p := range ps {
		if p.running() {
			winner = p
		}
	}
	if winner == nil {
		tr.res.LiveDamaged++
		for _, p := range ps {
			tr.expectCode(p, []int{1})
		}
		tr.fatalf("no producer won: all %d exited", k)
	}
	for _, p := range ps {
		if p != winner {
			tr.refused(p, "producer", winner.pid())
		}
	}
	m := tr.file("manifest")
	c := tr.start("consumer", procOpt{}, tr.consume(st, m, "-wait", "10s")...)
	if winner.wait(exitBound) != 0 || c.wait(exitBound) != 0 {
		tr.res.LiveDamaged++
	}
	tr.expectCode(winner, []int{0})
	tr.expectCode(c, []int{0})
	ch.end(map[int]bool{winner.pid(): true, c.pid(): true})
	counts := tr.delivered("consumer", m, st)
	lost := tr.res.Lost
	tr.requireAll("the stream", counts, 0, st.items)
	if tr.res.Lost > lost {
		tr.res.LiveDamaged++
	}
	tr.checkLeftovers()
}

// churnRounds is how many times churn creates, drains and removes its ring
// (fewer in Short mode).
const churnRounds = 50

// churn: one NAME is created, drained, removed and created again
// churnRounds times in a row, while gc -name NAME, gc -dry-run and ls run
// in a loop at random moments. In every round, while the round's producer
// and consumer both hold their roles (the producer stopped with SIGSTOP on
// a full ring, alive), extra producers and consumers start: each must be
// refused. No
// live ring may lose an object, no role may have two live holders, every
// round's stream is delivered exactly once, and nothing is left.
func churn(tr *Trial) {
	rounds := churnRounds
	if tr.cfg.Short {
		rounds = 8
	}
	sizes := []int{4096, 16 << 10}
	if tr.pages == Huge {
		sizes = []int{4096, 2 << 20}
	}
	tr.variant("%d rounds", rounds)
	ch := tr.startChaos()
	owners := map[int]bool{}
	extras := 0
	for round := range rounds {
		st := stream{slots: 1 + tr.intn(4), slotSize: sizes[tr.intn(len(sizes))], workers: 1 + tr.intn(2)}
		st.items = uint64(st.slots + 1 + tr.intn(20))
		st.total = st.items * uint64(st.slotSize)
		p := tr.start(fmt.Sprintf("producer %d", round), procOpt{}, tr.produce(st, "-wait", "20s")...)
		owners[p.pid()] = true
		seg, r := tr.observeRound(p)
		slots := uint64(st.slots)
		tr.waitFor("the ring to fill", exitBound, func() bool { return r.Head()-r.Tail() == slots }, p)
		// The producer stopped (alive) on a full ring, the consumer
		// attached and waiting for more: both roles are held for as long
		// as the extras take.
		p.signal(syscall.SIGSTOP)
		tr.waitFor("the producer to stop", exitBound, p.stopped, p)
		m := tr.file(fmt.Sprintf("manifest-%d", round))
		c := tr.start(fmt.Sprintf("consumer %d", round), procOpt{}, tr.consume(st, m, "-wait", "10s")...)
		owners[c.pid()] = true
		tr.waitFor("the consumer to attach", exitBound, func() bool { return int(r.ConsumerID().PID) == c.pid() }, c, p)
		var claimants []*proc
		for range tr.intn(4) {
			extras++
			if tr.intn(2) == 0 {
				claimants = append(claimants, tr.start("extra producer", procOpt{}, tr.produce(st, "-wait", "300ms")...))
			} else {
				em := tr.file(fmt.Sprintf("extra-manifest-%d", extras))
				e := tr.start("extra consumer", procOpt{}, "consume", "-name", tr.name, "-wait", "300ms", "-manifest", em)
				claimants = append(claimants, e)
				defer func() {
					if got := tr.delivered("extra consumer", em, st); len(got) > 0 {
						tr.res.DoubleOwners++
						tr.failf("an extra consumer delivered %d items while the round's consumer held the role", len(got))
					}
				}()
			}
		}
		for _, e := range claimants {
			role := strings.TrimPrefix(e.role, "extra ")
			owner := p.pid()
			if role == "consumer" {
				owner = c.pid()
			}
			tr.refused(e, role, owner)
		}
		p.signal(syscall.SIGCONT)
		pc, cc := p.wait(exitBound), c.wait(exitBound)
		tr.expectCode(p, []int{0})
		tr.expectCode(c, []int{0})
		counts := tr.delivered(c.role, m, st)
		lost := tr.res.Lost
		tr.requireAll(fmt.Sprintf("round %d's stream", round), counts, 0, st.items)
		if pc != 0 || cc != 0 || tr.res.Lost > lost {
			tr.res.LiveDamaged++
		}
		_ = seg.Detach()
		tr.checkLeftovers()
		if !tr.res.OK() {
			tr.fatalf("round %d of %d failed", round, rounds)
		}
	}
	ch.end(owners)
	tr.logf("%d rounds, %d extra claimants refused", rounds, extras)
}

// observeRound attaches the ring of producer p read-only once it is
// formatted, for one round: the caller detaches it (a trial of many rounds
// must not keep every removed segment's memory mapped).
func (tr *Trial) observeRound(p *proc) (*shm.Segment, *ring.Ring) {
	var seg *shm.Segment
	var r *ring.Ring
	tr.waitFor("ring "+tr.name+" to appear", 20*time.Second, func() bool {
		s, err := shm.Attach(tr.names.Key, true, shm.Options{Lock: shm.Off})
		if err != nil {
			return false
		}
		rr, err := ring.Open(s.Bytes())
		if err != nil || rr.Name() != tr.name || int(rr.ProducerID().PID) != p.pid() {
			_ = s.Detach()
			return false
		}
		seg, r = s, rr
		return true
	}, p)
	return seg, r
}

// foreignHandover: another uid makes objects at the ring's names and hands
// them over: a segment created by the attacker (a valid ring header naming
// the target uid, or garbage) given to the target uid with IPC_SET and a
// loose mode, and semaphore and lock files of the attacker's, mode 0666.
// While the target uid's producer, consumer, gc and ls run, the attacker
// keeps toggling the files' sizes and modes and the segment's mode. Every
// target process is refused or leaves the objects alone, none crashes or
// hangs, and the objects are neither written nor removed.
func foreignHandover(tr *Trial) {
	target, attacker := 0, tr.cfg.victim()
	if tr.intn(2) == 1 {
		target, attacker = tr.cfg.victim(), tr.cfg.foreign()
	}
	kind := tr.pick("ring", "garbage")
	modes := []uint32{0o600, 0o640, 0o660, 0o666}
	tr.normalPages = true
	size, _ := ring.Size(2, 4096)
	id, err := createAs(attacker, tr.names.Key, size)
	if err != nil {
		tr.fatalf("create a segment as uid %d: %v", attacker, err)
	}
	tr.cleanups = append(tr.cleanups, func() { _ = shm.RemoveID(id) })
	seg, err := shm.AttachID(id, false, shm.Options{Lock: shm.Off})
	if err != nil {
		tr.fatalf("attach the planted segment: %v", err)
	}
	if kind == "ring" {
		if _, err := ring.Format(seg.Bytes(), ring.Config{Name: tr.name, Slots: 2, SlotSize: 4096, OwnerUID: uint32(target)}); err != nil {
			tr.fatalf("format the planted segment: %v", err)
		}
	} else {
		for i := range seg.Bytes()[:8192] {
			seg.Bytes()[i] = byte(tr.intn(256))
		}
	}
	digest := sha256.Sum256(seg.Bytes())
	_ = seg.Detach()
	if err := chownSeg(id, target, 0o666); err != nil {
		tr.fatalf("hand the segment over: %v", err)
	}
	tr.planted[fmt.Sprintf("segment key %#x", tr.names.Key)] = true
	files := []string{}
	for _, p := range tr.names.Files() {
		if tr.intn(2) == 0 && !strings.HasSuffix(p, ".lock") {
			continue
		}
		if err := os.WriteFile(p, make([]byte, 32), 0o666); err != nil {
			tr.fatalf("plant %s: %v", p, err)
		}
		if err := os.Chown(p, attacker, attacker); err != nil {
			tr.fatalf("chown %s: %v", p, err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			tr.fatalf("chmod %s: %v", p, err)
		}
		files = append(files, p)
		tr.planted[p] = true
	}
	tr.variant("uid %d hands a %s segment and %d files to uid %d", attacker, kind, len(files), target)

	// The attacker toggles sizes and modes until the victims are done.
	stop, toggled := make(chan struct{}), make(chan int)
	rng := mrand.New(mrand.NewPCG(tr.rng.Uint64(), 1))
	go func() {
		n := 0
		defer func() { toggled <- n }()
		for {
			select {
			case <-stop:
				for _, p := range files { // leave them as planted
					_ = os.Truncate(p, 32)
					_ = os.Chmod(p, 0o666)
				}
				_ = chownSeg(id, target, 0o666)
				return
			default:
			}
			if len(files) > 0 {
				p := files[rng.IntN(len(files))]
				if rng.IntN(2) == 0 {
					_ = os.Truncate(p, []int64{0, 8, 31, 32, 4096}[rng.IntN(5)])
				} else {
					_ = os.Chmod(p, os.FileMode(modes[rng.IntN(len(modes))]))
				}
			}
			_ = chownSeg(id, target, modes[rng.IntN(len(modes))])
			n++
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
	}()
	opt := procOpt{uid: target}
	var victims []*proc
	for range 3 {
		victims = append(victims,
			tr.start("victim producer", opt, "produce", "-name", tr.name, "-slots", "2", "-slot-size", "4096", "-count", "10",
				"-hugepages", "off", "-wait", "1s", "-perm", "0666"),
			tr.start("victim consumer", opt, "consume", "-name", tr.name, "-wait", "1s"),
			tr.start("victim gc", opt, "gc", "-name", tr.name),
			tr.start("victim ls", opt, "ls", "-json"),
		)
	}
	for _, v := range victims {
		v.wait(hostileBound + 5*time.Second)
	}
	close(stop)
	tr.logf("the attacker toggled %d times", <-toggled)
	for _, v := range victims {
		switch v.role {
		case "victim producer":
			if v.code() == 0 {
				tr.res.Adopted++
				tr.failf("a producer of uid %d used the segment uid %d created and handed over", target, attacker)
			}
			tr.expectCode(v, []int{1})
		case "victim consumer":
			if v.code() == 0 {
				tr.res.Adopted++
				tr.failf("a consumer of uid %d read the segment uid %d created and handed over", target, attacker)
			}
			tr.expectCode(v, []int{1, 3})
		default:
			tr.expectCode(v, []int{0})
			if v.role == "victim gc" && strings.Contains(v.stdout.String(), "removed") {
				tr.res.Adopted++
				tr.failf("gc of uid %d removed uid %d's objects: %s", target, attacker, v.stdout.String())
			}
		}
	}
	info, err := shm.StatID(id)
	switch {
	case err != nil:
		tr.res.Adopted++
		tr.failf("the handed-over segment %d was removed: %v", id, err)
	case info.CUID != attacker || info.UID != target:
		tr.failf("the handed-over segment's ids changed: uid %d cuid %d", info.UID, info.CUID)
	default:
		s, err := shm.AttachID(id, true, shm.Options{Lock: shm.Off})
		if err != nil {
			tr.fatalf("attach the planted segment: %v", err)
		}
		if sha256.Sum256(s.Bytes()) != digest {
			tr.res.Adopted++
			tr.failf("the handed-over segment %d was written", id)
		}
		_ = s.Detach()
	}
	for _, p := range files {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			tr.res.Adopted++
			tr.failf("the attacker's %s was removed: %v", p, err)
			continue
		}
		if int(st.Uid) != attacker {
			tr.res.Adopted++
			tr.failf("the attacker's %s now belongs to uid %d", p, st.Uid)
		}
	}
	tr.checkLeftovers()
}

// createAs creates a SysV segment at key as uid (its creator uid, cuid, is
// then uid): one locked OS thread takes uid as its effective uid for the
// shmget and takes root back afterwards (the real and saved uids stay 0).
// The thread must not die: every child this process started from it
// (Pdeathsig is per thread) would be killed with it. If it cannot become
// root again it is parked for good instead (goleak then reports it).
func createAs(uid, key, size int) (int, error) {
	type result struct {
		id  int
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("setresuid: %w", e)}
			return
		}
		id, err := unix.SysvShmGet(key, size, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
			res <- result{id: id, err: fmt.Errorf("take back euid 0 after creating as uid %d: %w", uid, e)}
			select {} // never hand a thread with another identity back to the runtime
		}
		runtime.UnlockOSThread()
		res <- result{id: id, err: err}
	}()
	r := <-res
	return r.id, r.err
}
