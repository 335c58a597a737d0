package sem_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/sem"
)

// TestKillBlockedWaiter SIGKILLs processes blocked in Wait (a Go helper
// process, and a C sem_wait when gcc is there). The dead waiter's
// registration stays in nwaiters for ever, as with glibc; the test shows
// that this is harmless: posts are not lost to the dead process, TryWait,
// a Wait in this process and a Wait in a new process all work, and the
// value is exactly posts minus takes.
func TestKillBlockedWaiter(t *testing.T) {
	s, name := mustCreate(t, 0)

	victims := []*proc{startHelper(t, "wait", name)}
	if _, err := exec.LookPath("gcc"); err == nil {
		tool := buildC(t, t.TempDir(), "semtool")
		victims = append(victims, startProc(t, exec.Command(tool, "wait", name)))
	} else {
		t.Log("gcc not found: killing only a Go waiter, not a C one")
	}
	for _, v := range victims {
		v.expectLine(t, 10*time.Second, "ready")
	}
	n := uint32(len(victims))
	eventually(t, 10*time.Second, "the victims to block", func() bool { return mustWaiters(t, s) == n })
	time.Sleep(20 * time.Millisecond) // let them reach the kernel
	for _, v := range victims {
		if err := v.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := v.wait(t, 10*time.Second)
		ws, ok := v.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("victim %v did not die of SIGKILL: %v", v.cmd.Args, err)
		}
	}
	if got := mustWaiters(t, s); got != n {
		t.Fatalf("nwaiters %d after killing %d blocked waiters; want them left counted", got, n)
	}
	t.Logf("nwaiters left at %d by the dead waiters", n)

	// A post is not swallowed by the dead: it stays in the value.
	if err := s.Post(); err != nil {
		t.Fatal(err)
	}
	if v := mustValue(t, s); v != 1 {
		t.Fatalf("value %d after one post, want 1", v)
	}
	if ok, err := s.TryWait(); !ok || err != nil {
		t.Fatalf("TryWait = %v, %v", ok, err)
	}

	// A Go waiter in this process blocks and is woken by a post.
	ch := waitAsync(s, context.Background())
	eventually(t, 10*time.Second, "a new waiter", func() bool { return mustWaiters(t, s) == n+1 })
	time.Sleep(5 * time.Millisecond)
	s.Post()
	if r := recvWithin(t, ch, 5*time.Second, "post after the kill"); r.err != nil {
		t.Fatal(r.err)
	}

	// A waiter in a new process is woken too.
	p := startHelper(t, "wait", name)
	p.expectLine(t, 10*time.Second, "ready")
	eventually(t, 10*time.Second, "a new process waiter", func() bool { return mustWaiters(t, s) == n+1 })
	time.Sleep(5 * time.Millisecond)
	s.Post()
	p.expectLine(t, 5*time.Second, "ok")
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Many posts and takes still balance.
	for range 100 {
		s.Post()
	}
	for range 60 {
		if err := s.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if v, w := mustValue(t, s), mustWaiters(t, s); v != 40 || w != n {
		t.Fatalf("value %d nwaiters %d, want 40 and %d", v, w, n)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// A fresh handle sees the same.
	o, err := sem.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if v := mustValue(t, o); v != 40 {
		t.Fatalf("value through a new handle: %d", v)
	}
}

// TestKillDuringCreate SIGKILLs a process that creates semaphores in a
// loop, at random moments, 30 times: no temporary file may be left in
// /dev/shm (Create builds the semaphore in an unnamed O_TMPFILE file and
// links it whole). The named semaphores the victims created and had not
// yet unlinked are theirs (a killed sem_open user leaves those too) and
// are removed here.
func TestKillDuringCreate(t *testing.T) {
	if fd, err := unix.Open(sem.Dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600); err != nil {
		t.Skipf("%s has no O_TMPFILE (%v): Create falls back to named temporary files, which a kill can leave, as glibc's do", sem.Dir, err)
	} else {
		_, statErr := os.Stat(fmt.Sprintf("/proc/self/fd/%d", fd))
		unix.Close(fd)
		if statErr != nil {
			t.Skipf("no /proc/self/fd (%v): Create falls back to named temporary files, which a kill can leave, as glibc's do", statErr)
		}
	}
	temp := regexp.MustCompile(`^sem\.[A-Za-z0-9]{6}$`)
	temps := func() map[string]bool {
		ents, err := os.ReadDir(sem.Dir)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, e := range ents {
			if temp.MatchString(e.Name()) {
				m[e.Name()] = true
			}
		}
		return m
	}
	before := temps()
	start := time.Now()
	prefix := fmt.Sprintf("shmpc-killcreate-%d-%d", os.Getpid(), rand.IntN(1<<30))
	t.Cleanup(func() {
		ents, _ := os.ReadDir(sem.Dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "sem."+prefix+"-") {
				_ = sem.Unlink(strings.TrimPrefix(e.Name(), "sem."))
			}
		}
	})
	for i := range 30 {
		v := startHelper(t, "create-loop", fmt.Sprintf("%s-%d", prefix, i))
		v.expectLine(t, 10*time.Second, "ready")
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := v.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = v.wait(t, 10*time.Second)
	}
	// A glibc creator elsewhere has its temporary file for microseconds:
	// only files that are still there a moment later count.
	time.Sleep(100 * time.Millisecond)
	var left []string
	for name := range temps() {
		if !before[name] {
			left = append(left, name)
		}
	}
	if len(left) == 0 {
		return
	}
	// Remove only what is surely ours: created during the test, by this
	// uid, holding nothing or a semaphore's 32 bytes.
	for _, name := range left {
		var st unix.Stat_t
		if unix.Stat(sem.Dir+name, &st) != nil {
			continue
		}
		created := time.Unix(st.Ctim.Unix())
		if int(st.Uid) == os.Geteuid() && (st.Size == 0 || st.Size == 32) && !created.Before(start.Add(-time.Second)) {
			_ = os.Remove(sem.Dir + name)
		}
	}
	t.Fatalf("temporary files left in %s by killed creators: %v", sem.Dir, left)
}
