package cinterop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmpc/shmpc/internal/testutil"
)

// The binaries every test runs, built once per test process into binDir
// (removed by TestMain).
var (
	buildOnce sync.Once
	binDir    string
	cBin      string // shmpc-c, built from ../c with the C compiler
	goBin     string // shmpc, built from ../cmd/shmpc
	noCC      string // why there is no C compiler, when there is none
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries returns the paths of shmpc-c and shmpc, building them at the
// first call. It skips tb, naming what is missing, when no C compiler is
// installed; with SHMPC_REQUIRE_GCC=1 (CI) it fails instead.
func binaries(tb testing.TB) (c, goCmd string) {
	tb.Helper()
	buildOnce.Do(build)
	if noCC != "" {
		if os.Getenv("SHMPC_REQUIRE_GCC") == "1" {
			tb.Fatalf("%s, and SHMPC_REQUIRE_GCC=1 requires the C interop tests to run", noCC)
		}
		tb.Skip(noCC)
	}
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return cBin, goBin
}

func build() {
	var cc string
	for _, name := range []string{"cc", "gcc", "clang"} {
		if p, err := exec.LookPath(name); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		noCC = "no C compiler (cc, gcc or clang) in PATH: the C interop tests build c/ with one (apt-get install gcc libc6-dev)"
		return
	}
	dir, err := os.MkdirTemp("", "shmpc-cinterop-")
	if err != nil {
		buildErr = err
		return
	}
	binDir = dir
	srcs, err := filepath.Glob(filepath.Join("..", "c", "*.c"))
	if err != nil || len(srcs) == 0 {
		buildErr = fmt.Errorf("no C sources in ../c (%v)", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cBin = filepath.Join(dir, "shmpc-c")
	args := append([]string{"-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", cBin}, srcs...)
	if out, err := exec.CommandContext(ctx, cc, args...).CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("build shmpc-c with %s: %v\n%s", cc, err, out)
		return
	}
	goBin = filepath.Join(dir, "shmpc")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", goBin, "./cmd/shmpc")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("build shmpc: %v\n%s", err, out)
	}
}

// proc is a started command whose end is waited for once.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine of exec and
// the test reading it.
type lockedBuffer = testutil.SyncBuffer

// start runs bin with args, stdin and stdout (nil: none), and registers a
// cleanup that kills it if it still runs and waits for it (bounded).
func start(t *testing.T, bin string, stdin io.Reader, stdout io.Writer, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	errBuf := &lockedBuffer{}
	cmd.Stderr = errBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: filepath.Base(bin) + " " + args[0], cmd: cmd, stderr: errBuf, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still running 10 s after SIGKILL", p.name)
		}
	})
	return p
}

// wait waits up to d for p to exit and returns its exit status (-1 when a
// signal ended it). It kills p and fails the test when d passes first.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s: still running after %v; stderr:\n%s", p.name, d, p.stderr)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", p.name, p.err)
	return 0
}

// requireExit waits for p and fails the test unless it exited with want.
func (p *proc) requireExit(t *testing.T, d time.Duration, want int) {
	t.Helper()
	if got := p.wait(t, d); got != want {
		t.Fatalf("%s: exit status %d, want %d; stderr:\n%s", p.name, got, want, strings.TrimSpace(p.stderr.String()))
	}
}
