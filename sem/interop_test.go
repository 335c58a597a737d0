package sem_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/sem"
)

// buildC compiles testdata/NAME.c with gcc into dir and returns the binary.
// It skips the test, naming what is missing, when gcc is not installed or
// the C library is not glibc; with SHMPC_REQUIRE_GCC=1 (set by CI, where
// these are the only tests that prove glibc's layout) it fails instead.
func buildC(t tb, dir, name string) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("SHMPC_REQUIRE_GCC") == "1" {
		skip = t.Fatalf
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		skip("gcc not found in PATH: the C interop tests need gcc and the glibc headers (apt-get install gcc libc6-dev)")
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(gcc, "-O2", "-Wall", "-Werror", "-o", out, filepath.Join("testdata", name+".c"), "-pthread")
	if b, err := cmd.CombinedOutput(); err != nil {
		if strings.Contains(string(b), "gnu/libc-version.h") {
			skip("the C library is not glibc (no gnu/libc-version.h); the interop tests compare with glibc: %s", b)
		}
		t.Fatalf("gcc %s.c: %v\n%s", name, err, b)
	}
	return out
}

// runC runs a C tool to completion (bounded) and returns its last output
// line split into fields: "ok ..." or "err ENAME ...".
func runC(t tb, bin string, args ...string) []string {
	t.Helper()
	return runCWithin(t, 10*time.Second, bin, args...)
}

// runCWithin is runC with a bound of d.
func runCWithin(t tb, d time.Duration, bin string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("%s %q: still running after %v", filepath.Base(bin), args, d)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) == 0 {
		t.Fatalf("%s %q: no output (%v)", filepath.Base(bin), args, err)
	}
	if (f[0] == "ok") != (err == nil) {
		t.Fatalf("%s %q: output %q but exit %v", filepath.Base(bin), args, out, err)
	}
	return f
}

// errnoName returns the symbolic name of the errno in err, or "ok".
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		return "non-errno: " + err.Error()
	}
	return unix.ErrnoName(e)
}

func cResult(f []string) string {
	if f[0] == "ok" {
		return "ok"
	}
	return f[1]
}

func readSemFile(t tb, name string) []byte {
	t.Helper()
	path, err := sem.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInterop shows package sem and glibc share one semaphore, in both
// directions. The C side is testdata/semtool.c, built with gcc.
func TestInterop(t *testing.T) {
	tool := buildC(t, t.TempDir(), "semtool")
	t.Logf("glibc %s", runC(t, tool, "libc", "-")[1])

	t.Run("GoPostWakesCWait", func(t *testing.T) {
		s, name := mustCreate(t, 0)
		c := startProc(t, exec.Command(tool, "wait", name))
		c.expectLine(t, 10*time.Second, "ready")
		eventually(t, 10*time.Second, "the C waiter to register", func() bool { return mustWaiters(t, s) == 1 })
		time.Sleep(20 * time.Millisecond)
		if c.exited() {
			t.Fatal("sem_wait returned on a zero semaphore")
		}
		if err := s.Post(); err != nil {
			t.Fatal(err)
		}
		c.expectLine(t, 5*time.Second, "ok")
		if err := c.wait(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if n, v := mustWaiters(t, s), mustValue(t, s); n != 0 || v != 0 {
			t.Fatalf("after the C waiter took the token: nwaiters %d value %d", n, v)
		}
	})

	t.Run("CPostWakesGoWait", func(t *testing.T) {
		s, name := mustCreate(t, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, c := range []context.Context{context.Background(), ctx} {
			ch := waitAsync(s, c)
			eventually(t, 10*time.Second, "the Go waiter to sleep", func() bool { return mustWaiters(t, s) == 1 })
			time.Sleep(5 * time.Millisecond)
			if f := runC(t, tool, "post", name, "1"); f[0] != "ok" {
				t.Fatalf("C post: %v", f)
			}
			if r := recvWithin(t, ch, 5*time.Second, "C post"); r.err != nil {
				t.Fatalf("Wait: %v", r.err)
			}
			if n, v := mustWaiters(t, s), mustValue(t, s); n != 0 || v != 0 {
				t.Fatalf("nwaiters %d value %d", n, v)
			}
		}
		if s.Sleeps() == 0 {
			t.Fatal("the Go waiters never slept in the kernel")
		}
	})

	t.Run("CTimedWaitOnGoSemaphore", func(t *testing.T) {
		s, name := mustCreate(t, 0)
		const ms = 100
		c := startProc(t, exec.Command(tool, "timedwait", name, strconv.Itoa(ms)))
		c.expectLine(t, 10*time.Second, "ready")
		f := strings.Fields(c.line(t, 10*time.Second))
		if len(f) != 3 || f[0] != "err" || f[1] != "ETIMEDOUT" {
			t.Fatalf("sem_timedwait on zero: %v, want err ETIMEDOUT", f)
		}
		us, _ := strconv.Atoi(f[2])
		// The deadline is on CLOCK_REALTIME and the elapsed time on
		// CLOCK_MONOTONIC: a slewing clock puts them a little apart (seen:
		// 99 612 us for 100 ms), so allow 2 ms early.
		if us < ms*1000-2000 || us > ms*1000+500_000 {
			t.Fatalf("sem_timedwait(%d ms) returned after %d us", ms, us)
		}
		c.wait(t, 5*time.Second)
		if n, v := mustWaiters(t, s), mustValue(t, s); n != 0 || v != 0 {
			t.Fatalf("after the timeout: nwaiters %d value %d, want 0 0", n, v)
		}

		// A Go Post wakes a C sem_timedwait before its timeout.
		c = startProc(t, exec.Command(tool, "timedwait", name, "10000"))
		c.expectLine(t, 10*time.Second, "ready")
		eventually(t, 10*time.Second, "the C waiter to register", func() bool { return mustWaiters(t, s) == 1 })
		s.Post()
		f = strings.Fields(c.line(t, 5*time.Second))
		if f[0] != "ok" {
			t.Fatalf("sem_timedwait after a Go Post: %v", f)
		}
		c.wait(t, 5*time.Second)

		// A positive value is taken at once.
		s.Post()
		if f := runC(t, tool, "timedwait", name, "10000"); f[0] != "ok" {
			t.Fatalf("sem_timedwait with value 1: %v", f)
		}
		if n, v := mustWaiters(t, s), mustValue(t, s); n != 0 || v != 0 {
			t.Fatalf("nwaiters %d value %d", n, v)
		}
	})

	t.Run("GetValueAgrees", func(t *testing.T) {
		for _, v := range []uint32{0, 1, 3, 1000, 1 << 20, sem.ValueMax - 1, sem.ValueMax} {
			s, name := mustCreate(t, v)
			if f := runC(t, tool, "getvalue", name); f[0] != "ok" || f[1] != strconv.FormatUint(uint64(v), 10) {
				t.Fatalf("Go-created with %d: sem_getvalue says %v", v, f)
			}
			cname := testName(t)
			runC(t, tool, "create", cname, strconv.FormatUint(uint64(v), 10), "600", "excl")
			c, err := sem.Open(cname)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustValue(t, c); got != v {
				t.Fatalf("C-created with %d: Value says %d", v, got)
			}
			c.Close()
			if v >= sem.ValueMax-1 {
				// Overflow agrees too: the C post fails at SEM_VALUE_MAX.
				runC(t, tool, "post", name, "1")
				if f := runC(t, tool, "post", name, "1"); cResult(f) != "EOVERFLOW" {
					t.Fatalf("sem_post at SEM_VALUE_MAX on a Go semaphore: %v", f)
				}
				continue
			}
			s.Post()
			runC(t, tool, "post", name, "2")
			if ok, _ := s.TryWait(); !ok {
				t.Fatal("TryWait after posts failed")
			}
			runC(t, tool, "trywait", name)
			want := strconv.FormatUint(uint64(v+1), 10)
			if f := runC(t, tool, "getvalue", name); f[1] != want || strconv.FormatUint(uint64(mustValue(t, s)), 10) != want {
				t.Fatalf("after mixed posts and takes: C %v, Go %d, want %s", f, mustValue(t, s), want)
			}
		}
		// sem_trywait on zero is EAGAIN, like TryWait's false.
		_, name := mustCreate(t, 0)
		if f := runC(t, tool, "trywait", name); cResult(f) != "EAGAIN" {
			t.Fatalf("sem_trywait on zero: %v", f)
		}
	})

	t.Run("SameBytes", func(t *testing.T) {
		for _, v := range []uint32{0, 1, 3, 255, 256, 65536, 1000000, sem.ValueMax} {
			_, gname := mustCreate(t, v)
			cname := testName(t)
			runC(t, tool, "create", cname, strconv.FormatUint(uint64(v), 10), "600", "excl")
			g, c := readSemFile(t, gname), readSemFile(t, cname)
			if len(g) != 32 || string(g) != string(c) {
				t.Fatalf("value %d: Go file\n% x\nglibc file\n% x", v, g, c)
			}
			gp, _ := sem.Path(gname)
			cp, _ := sem.Path(cname)
			gi, _ := os.Stat(gp)
			ci, _ := os.Stat(cp)
			if gi.Mode() != ci.Mode() {
				t.Fatalf("mode: Go %v, glibc %v", gi.Mode(), ci.Mode())
			}
		}

		// With a C waiter blocked on each, then after posts that wake them.
		g, gname := mustCreate(t, 0)
		cname := testName(t)
		runC(t, tool, "create", cname, "0", "600", "excl")
		c, err := sem.Open(cname)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		gw := startProc(t, exec.Command(tool, "wait", gname))
		cw := startProc(t, exec.Command(tool, "wait", cname))
		eventually(t, 10*time.Second, "both C waiters to register", func() bool {
			return mustWaiters(t, g) == 1 && mustWaiters(t, c) == 1
		})
		gb, cb := readSemFile(t, gname), readSemFile(t, cname)
		want := "00 00 00 00 01 00 00 00 80 00 00 00 00 00 00 00" + strings.Repeat(" 00", 16)
		if fmt.Sprintf("% x", gb) != want || string(gb) != string(cb) {
			t.Fatalf("with one blocked waiter: Go file\n% x\nglibc file\n% x\nwant\n%s", gb, cb, want)
		}
		g.Post()                          // Go posts to the Go-created one
		runC(t, tool, "post", cname, "1") // C posts to the glibc-created one
		gw.expectLine(t, 5*time.Second, "ready")
		gw.expectLine(t, 5*time.Second, "ok")
		cw.expectLine(t, 5*time.Second, "ready")
		cw.expectLine(t, 5*time.Second, "ok")
		gw.wait(t, 5*time.Second)
		cw.wait(t, 5*time.Second)
		runC(t, tool, "post", gname, "3") // and crosswise
		for range 3 {
			c.Post()
		}
		gb, cb = readSemFile(t, gname), readSemFile(t, cname)
		want = "03 00 00 00 00 00 00 00 80 00 00 00 00 00 00 00" + strings.Repeat(" 00", 16)
		if fmt.Sprintf("% x", gb) != want || string(gb) != string(cb) {
			t.Fatalf("after the waiters left and 3 posts: Go file\n% x\nglibc file\n% x\nwant\n%s", gb, cb, want)
		}
	})

	t.Run("Names", func(t *testing.T) {
		type row struct {
			name                 string
			create, open, unlink string // Go's answers
		}
		long := testName(t)
		long += strings.Repeat("q", 252-len(long)) // 251 bytes after the '/'
		var rows []row
		for _, c := range badNames {
			rows = append(rows, row{c.name, unix.ErrnoName(c.open), unix.ErrnoName(c.open), unix.ErrnoName(c.unlink)})
		}
		for _, name := range []string{testName(t), "//" + testName(t)[1:], testName(t)[1:], long} {
			rows = append(rows, row{name, "ok", "ok", "ok"})
		}
		for _, r := range rows {
			// Go's answers are in the table; also check them live.
			_, goCreate := sem.Create(r.name, 0, 0o600)
			if got := errnoName(goCreate); got != r.create {
				t.Errorf("Go Create(%.24q): %s, want %s", r.name, got, r.create)
			}
			if goCreate == nil {
				sem.Unlink(r.name)
			}
			show := fmt.Sprintf("%.24q (%d bytes)", r.name, len(r.name))
			if got := cResult(runC(t, tool, "create", r.name, "0", "600", "excl")); got != r.create {
				t.Errorf("name %s: glibc sem_open(O_CREAT|O_EXCL) %s, Go Create %s", show, got, r.create)
			}
			if got := cResult(runC(t, tool, "open", r.name)); got != r.open {
				t.Errorf("name %s: glibc sem_open %s, Go Open %s", show, got, r.open)
			}
			_, goOpen := sem.Open(r.name)
			if got := errnoName(goOpen); got != r.open {
				t.Errorf("name %s: Go Open %s, want %s", show, got, r.open)
			}
			if got := cResult(runC(t, tool, "unlink", r.name)); got != r.unlink {
				t.Errorf("name %s: glibc sem_unlink %s, Go Unlink %s", show, got, r.unlink)
			}
			if got := errnoName(sem.Unlink(r.name)); r.unlink == "ok" && got != "ENOENT" || r.unlink != "ok" && got != r.unlink {
				t.Errorf("name %s: Go Unlink after C's %s: %s", show, r.unlink, got)
			}
		}
	})

	t.Run("CreatedByOneUsedByTheOther", func(t *testing.T) {
		// glibc creates, Go opens, both post and take.
		name := testName(t)
		runC(t, tool, "create", name, "0", "600", "excl")
		if f := runC(t, tool, "create", name, "0", "600", "excl"); cResult(f) != "EEXIST" {
			t.Fatalf("second O_EXCL create: %v", f)
		}
		if _, err := sem.Create(name, 0, 0o600); errnoName(err) != "EEXIST" {
			t.Fatalf("Go Create over a glibc semaphore: %v", err)
		}
		s, err := sem.OpenOrCreate(name, 9, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.CheckOwner(os.Getuid(), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Post()
		if f := runC(t, tool, "trywait", name); f[0] != "ok" {
			t.Fatalf("C trywait after Go post: %v", f)
		}
		if f := runC(t, tool, "create", name, "5", "600", "noexcl"); f[0] != "ok" {
			t.Fatalf("C O_CREAT on an existing Go-opened semaphore: %v", f)
		}
		if v := mustValue(t, s); v != 0 {
			t.Fatalf("value %d, want 0", v)
		}
	})
}
