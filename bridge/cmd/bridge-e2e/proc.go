package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/internal/syncbuf"
)

// proc is a process a trial started: its stderr is kept, it gets SIGKILL
// when the runner's thread that started it dies, and it is always waited for.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr syncbuf.Buffer
	done   chan struct{}
	killed bool // by the trial, on purpose
}

// start starts a process and registers it with the trial, which kills what
// still runs when it ends.
func (t *trial) start(name, path string, args ...string) *proc {
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.procs = append(t.procs, p)
	t.logf("started %s (pid %d): %s", name, p.cmd.Process.Pid, strings.Join(args, " "))
	return p
}

// running reports whether p has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to d for p and returns its exit status (-1: killed by a
// signal); a process that outlives d is killed and reported as a hang.
func (t *trial) wait(p *proc, d time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.fatalf("%s hung: not exited %v after it was waited for; stderr tail:\n%s", p.name, d, tail(p.stderr.String(), 8))
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill SIGKILLs p and waits for it.
func (t *trial) kill(p *proc) {
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.fatalf("%s not dead 10s after SIGKILL", p.name)
	}
	t.logf("killed %s", p.name)
}

// requireExit fails the trial unless p exits with one of want.
func (t *trial) requireExit(p *proc, d time.Duration, want ...int) int {
	got := t.wait(p, d)
	for _, w := range want {
		if got == w {
			return got
		}
	}
	t.failf("%s exited %d, want %v; stderr tail:\n%s", p.name, got, want, tail(p.stderr.String(), 8))
	return got
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// natsd is the trial's NATS server, a process of its own so it can be killed
// and started again on the same port and store.
type natsd struct {
	store string
	port  int
	url   string
	p     *proc
}

// startNatsd starts natsd with its store in store on a port drawn below
// the kernel's ephemeral range (32768 on), so that no client's connection
// takes it while the server is down, and waits for its ready line.
func (t *trial) startNatsd(store string) *natsd {
	n := &natsd{store: store}
	var errs []string
	for range 8 {
		n.port = 20000 + t.rng.IntN(12000)
		err := t.tryLaunch(n)
		if err == nil {
			return n
		}
		errs = append(errs, err.Error())
	}
	t.fatalf("natsd did not start on 8 ports: %s", strings.Join(errs, "; "))
	return nil
}

// launch starts n's process on its port and store (again, after a crash)
// and waits for it to accept connections.
func (t *trial) launch(n *natsd) {
	if err := t.tryLaunch(n); err != nil {
		t.fatalf("%v", err)
	}
}

// tryLaunch is launch returning its error.
func (t *trial) tryLaunch(n *natsd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	p := &proc{name: "natsd", done: make(chan struct{})}
	p.cmd = exec.Command(t.cfg.natsd, "-store", n.store, "-port", strconv.Itoa(n.port), "-max-payload", strconv.Itoa(t.maxPayload))
	p.cmd.Stdout, p.cmd.Stderr = w, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = p.cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start natsd: %w", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	ready := make(chan string, 1)
	go func() {
		defer close(ready)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "natsd: ready "); ok {
				ready <- url
				return
			}
		}
	}()
	select {
	case url, ok := <-ready:
		if !ok {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			return fmt.Errorf("natsd on port %d exited %d before it was ready: %s", n.port, p.cmd.ProcessState.ExitCode(), tail(p.stderr.String(), 3))
		}
		if url != fmt.Sprintf("nats://127.0.0.1:%d", n.port) {
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("natsd ready line %q: want nats://127.0.0.1:%d", url, n.port)
		}
		n.url, n.p = url, p
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("natsd on port %d not ready within 30s", n.port)
	}
	t.procs = append(t.procs, p)
	t.logf("natsd ready at %s (pid %d)", n.url, p.cmd.Process.Pid)
	return nil
}

// stop shuts natsd down with SIGTERM: it must exit 0.
func (t *trial) stopNatsd(n *natsd) {
	_ = n.p.cmd.Process.Signal(syscall.SIGTERM)
	t.requireExit(n.p, 30*time.Second, 0)
}

// recvIgnored returns the "N ignored" of a recv's summary line (-1: none).
func recvIgnored(stderr string) int {
	for _, l := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(l, "shmpc-bridge recv: ") || !strings.Contains(l, " ignored, ") {
			continue
		}
		var items, bytes, dropped, ignored, restarts int
		var secs float64
		if _, err := fmt.Sscanf(l, "shmpc-bridge recv: %d items, %d bytes committed (%d messages dropped as delivered, %d ignored, %d consumer restarts) in %fs",
			&items, &bytes, &dropped, &ignored, &restarts, &secs); err == nil {
			return ignored
		}
	}
	return -1
}
