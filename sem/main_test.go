package sem_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/shmpc/shmpc/sem"
)

// tb is what the helpers below need: both *testing.T and *rapid.T have it.
type tb interface {
	rapid.TB
	Cleanup(func())
}

// helperEnv selects a helper-process mode: the test binary re-executes
// itself with it set, and TestMain runs the helper instead of the tests.
const helperEnv = "SHMPC_SEM_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[len(os.Args)-helperArgCount(os.Args):]))
	}
	goleak.VerifyTestMain(m)
}

// helperArgCount returns how many trailing arguments belong to the helper:
// everything after the "--" that startHelper puts before them.
func helperArgCount(args []string) int {
	for i, a := range args {
		if a == "--" {
			return len(args) - i - 1
		}
	}
	return 0
}

// runHelper is the body of a helper process. It reports on stdout, one line
// per event, and returns the exit status.
func runHelper(mode string, args []string) int {
	fail := func(err error) int {
		fmt.Printf("err %v\n", err)
		return 1
	}
	switch mode {
	case "wait":
		// wait NAME: report "ready", block in Wait for up to 60 s, report "ok".
		s, err := sem.Open(args[0])
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		fmt.Println("ready")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := s.Wait(ctx); err != nil {
			return fail(err)
		}
		fmt.Println("ok")
		return 0
	case "stress":
		return stressHelper(args)
	case "serve":
		// serve A B N: N times wait on A and post B.
		return serveHelper(args)
	case "create-loop":
		// create-loop PREFIX: create, close and unlink PREFIX-0, PREFIX-1,
		// ... until killed; report "ready" after the first.
		for i := 0; ; i++ {
			name := fmt.Sprintf("%s-%d", args[0], i)
			s, err := sem.Create(name, 0, 0o600)
			if err != nil {
				return fail(err)
			}
			s.Close()
			if err := sem.Unlink(name); err != nil {
				return fail(err)
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	}
	return fail(fmt.Errorf("unknown helper mode %q", mode))
}

// testName returns a semaphore name unique to this test and process, and
// removes the semaphore when the test ends (also on failure).
func testName(t tb) string {
	t.Helper()
	name := fmt.Sprintf("/shmpc-semtest.%d.%08x", os.Getpid(), rand.Uint32())
	t.Cleanup(func() {
		if err := sem.Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// mustCreate creates a semaphore under a fresh test name and closes it when
// the test ends.
func mustCreate(t tb, value uint32) (*sem.Semaphore, string) {
	t.Helper()
	name := testName(t)
	s, err := sem.Create(name, value, 0o600)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, name
}

func mustValue(t tb, s *sem.Semaphore) uint32 {
	t.Helper()
	v, err := s.Value()
	if err != nil {
		t.Fatalf("Value: %v", err)
	}
	return v
}

func mustWaiters(t tb, s *sem.Semaphore) uint32 {
	t.Helper()
	n, err := s.Waiters()
	if err != nil {
		t.Fatalf("Waiters: %v", err)
	}
	return n
}

// eventually polls cond every millisecond until it holds or d passes.
func eventually(t tb, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// proc is a child process whose stdout is read line by line.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when Wait has returned
	err   error         // Wait's result, valid after done
}

// startProc starts a command, reads its stdout lines into a channel, and in
// t.Cleanup kills it (if still running) and always waits for it.
func startProc(t tb, cmd *exec.Cmd) *proc {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if cmd.SysProcAttr == nil {
		// If the test binary dies without running its cleanups, its
		// children die too instead of blocking for ever on a semaphore.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		readers.Wait() // StdoutPipe: read everything before Wait
		p.err = cmd.Wait()
		if p.err != nil && stderr.Len() > 0 {
			p.err = fmt.Errorf("%w; stderr: %s", p.err, stderr.String())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("process %d did not exit 10 s after SIGKILL", cmd.Process.Pid)
			}
		}
	})
	return p
}

// startHelper re-executes the test binary as a helper process.
func startHelper(t tb, mode string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	if raceEnabled {
		// A race-enabled binary sleeps atexit_sleep_ms (1 s by default)
		// on exit; helpers exit often.
		cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	return startProc(t, cmd)
}

// line returns the process's next stdout line, failing after d.
func (p *proc) line(t tb, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			t.Fatalf("process %v ended without output: %v", p.cmd.Args, p.err)
		}
		return l
	case <-time.After(d):
		t.Fatalf("no output from %v within %v", p.cmd.Args, d)
	}
	return ""
}

// expectLine fails unless the next line starts with prefix.
func (p *proc) expectLine(t tb, d time.Duration, prefix string) string {
	t.Helper()
	l := p.line(t, d)
	if !strings.HasPrefix(l, prefix) {
		t.Fatalf("%v: got line %q, want prefix %q", p.cmd.Args, l, prefix)
	}
	return l
}

// wait waits up to d for the process to exit and returns its error.
func (p *proc) wait(t tb, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("process %v still running after %v", p.cmd.Args, d)
	}
	return nil
}

// exitedWithin reports whether the process exits within d.
func (p *proc) exitedWithin(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
