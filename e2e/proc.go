package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/shmpc/shmpc/internal/syncbuf"
)

// proc is one process a trial started. Its fields are set by start and by
// the goroutine that waits for it; done is closed once it was reaped.
type proc struct {
	tr     *Trial
	role   string
	lang   string // langGo (shmpc, or the self-test's binary) or langC (shmpc-c)
	cmd    *exec.Cmd
	stdout *syncbuf.Buffer
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error     // from Wait, valid after done
	exitAt time.Time // when Wait returned, valid after done
	killAt time.Time // when this trial sent SIGKILL (zero: never)
}

// procOpt are the options of a started process.
type procOpt struct {
	fault  string    // SHMPC_FAULT value ("" for none)
	stdout io.Writer // nil: a buffer (proc.stdout)
	stdin  io.Reader // nil: /dev/null
	uid    int       // run as this uid and gid (0: as ourselves)
}

// start starts the shmpc binary with args, or shmpc-c when the trial's
// pair says role is played by the C command (Pair), with the flags
// shmpc-c knows (cArgs). A failure to start ends the trial.
func (tr *Trial) start(role string, o procOpt, args ...string) *proc {
	p := &proc{tr: tr, role: role, lang: langGo, stdout: new(syncbuf.Buffer), stderr: new(syncbuf.Buffer), done: make(chan struct{})}
	bin, name := tr.cfg.Binary, "shmpc"
	if len(args) > 0 && tr.pair.lang(role, args[0]) == langC {
		ca, err := cArgs(args)
		if err != nil {
			tr.fatalf("start %s as shmpc-c: %v (a bug of the suite)", role, err)
		}
		bin, name, args, p.lang = tr.cfg.CBinary, "shmpc-c", ca, langC
	}
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "SHMPC_FAULT="+o.fault)
	c.Dir = tr.dir
	c.Stderr = p.stderr
	c.Stdout = p.stdout
	if o.stdout != nil {
		c.Stdout = o.stdout
	}
	c.Stdin = o.stdin
	// A process group of its own, whose one outside connection is the runner:
	// in the runner's group, a stopped child (SIGSTOP trials) got SIGHUP and
	// SIGCONT from the kernel when that group was orphaned (a CI job whose
	// parent shell had gone: "producer exited with status 129" in a
	// lifecycle-churn trial), a death no trial drew.
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if o.uid != 0 {
		c.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.uid), NoSetGroups: true}
	}
	p.cmd = c
	if err := c.Start(); err != nil {
		tr.fatalf("start %s (%s %s): %v", role, name, strings.Join(args, " "), err)
	}
	go func() {
		p.err = c.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	tr.procs = append(tr.procs, p)
	tr.logf("started %s pid %d: %s %s%s", role, c.Process.Pid, name, strings.Join(args, " "), faultNote(o.fault))
	return p
}

func faultNote(f string) string {
	if f == "" {
		return ""
	}
	return " (SHMPC_FAULT=" + f + ")"
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not been reaped yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// code returns the exit status once the process was reaped: the exit
// code, or 128+signal for a death by a signal.
func (p *proc) code() int {
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// wait waits at most bound for the process to exit and returns its exit
// status. A process still running after bound is a hang: it is killed and
// the trial ends.
func (p *proc) wait(bound time.Duration) int {
	select {
	case <-p.done:
		return p.code()
	case <-time.After(bound):
	}
	before := len(p.stderr.String())
	p.tr.fatalf("hang: %s (pid %d) did not exit within %v; stderr:\n%s\ngoroutines (SIGQUIT):\n%s",
		p.role, p.pid(), bound, clip(p.stderr.String(), 1500), p.dump(before))
	return -1
}

// dump asks a hung Go process for its goroutines (SIGQUIT makes the
// runtime print them and exit), kills it if it does not exit within 2 s,
// and returns what it printed after byte before of its stderr. A C process
// has nothing to print: it is killed.
func (p *proc) dump(before int) string {
	if p.lang == langC {
		_ = p.cmd.Process.Kill()
		<-p.done
		return "(shmpc-c: no dump)"
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	s := p.stderr.String()
	if before > len(s) {
		before = len(s)
	}
	return clip(s[before:], 12000)
}

// kill sends SIGKILL and waits until the process was reaped (bounded:
// the kernel may take a moment to tear down a large mapping). It returns
// the time the signal was sent.
func (p *proc) kill() time.Time {
	if !p.running() {
		p.tr.fatalf("%s (pid %d) exited with status %d before it was to be killed; stderr:\n%s",
			p.role, p.pid(), p.code(), clip(p.stderr.String(), 1500))
	}
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.tr.fatalf("kill %s: %v", p.role, err)
	}
	p.killAt = at
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.tr.fatalf("%s (pid %d) was not reaped within 10s of SIGKILL", p.role, p.pid())
	}
	p.tr.logf("killed %s pid %d", p.role, p.pid())
	return at
}

// signal sends sig to the process. A process that already exited (the
// signal raced its exit) is not an error here: its exit status is judged
// by the caller.
func (p *proc) signal(sig syscall.Signal) time.Time {
	at := time.Now()
	err := p.cmd.Process.Signal(sig)
	switch {
	case errors.Is(err, os.ErrProcessDone):
		p.tr.logf("%v to %s pid %d: it had exited already", sig, p.role, p.pid())
	case err != nil:
		p.tr.fatalf("send %v to %s (pid %d): %v", sig, p.role, p.pid(), err)
	default:
		p.tr.logf("sent %v to %s pid %d", sig, p.role, p.pid())
	}
	return at
}

// waitStderr waits until the process printed want on stderr. Exiting
// first, or not printing it within bound, ends the trial.
func (p *proc) waitStderr(want string, bound time.Duration) {
	deadline := time.Now().Add(bound)
	for !strings.Contains(p.stderr.String(), want) {
		if !p.running() {
			p.tr.fatalf("%s exited with status %d before printing %q; stderr:\n%s", p.role, p.code(), want, clip(p.stderr.String(), 1500))
		}
		if time.Now().After(deadline) {
			p.tr.fatalf("hang: %s did not print %q within %v; stderr:\n%s", p.role, want, bound, clip(p.stderr.String(), 1500))
		}
		time.Sleep(time.Millisecond)
	}
}

// stopped reports whether the process is in the stopped state (SIGSTOP).
func (p *proc) stopped() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'T' || s[i+2] == 't')
}

// panicMarkers are what a Go runtime crash prints (and a sanitizer's
// report in a C process); none may appear on a shmpc or shmpc-c process's
// stderr.
var panicMarkers = []string{"panic:", "goroutine ", "fatal error:", "runtime error", "[signal ", "SIGSEGV", "SIGBUS", "Sanitizer"}

// notePrefixes start the informational lines a shmpc process may print
// besides its one-line error.
var notePrefixes = []string{
	"shmpc produce: resuming ring ",
	"shmpc produce: discarded the existing ring ",
	"shmpc consume: the producer of ",
	"shmpc: fault ",
}

// isNote reports whether l is one of the informational lines a shmpc
// process may print besides its one-line error: notePrefixes, and "ring
// NAME uses huge pages" or "ring NAME belongs to uid N" (an error line
// such as "ring NAME already has a live producer" is not one). shmpc-c
// prints the same lines with its own name first ("shmpc-c produce: ...",
// "shmpc-c: fault ..."; its huge-page note names no ring).
func isNote(l string) bool {
	if rest, ok := strings.CutPrefix(l, "shmpc-c"); ok {
		l = "shmpc" + rest
	}
	if hasAnyPrefix(l, notePrefixes) {
		return true
	}
	if hasAnyPrefix(l, []string{"shmpc produce: ring ", "shmpc consume: ring "}) {
		return strings.Contains(l, " uses huge pages") || strings.Contains(l, " belongs to uid ")
	}
	return false
}

// checkStderr checks a process's stderr after it exited: no panic trace
// ever; on a non-zero exit exactly one line (besides notes) that says
// what went wrong; and, when want is not empty, that the error line
// contains each of want. It returns the error line ("" on exit 0).
func (tr *Trial) checkStderr(p *proc, want ...string) string {
	errb := p.stderr.String()
	for _, m := range panicMarkers {
		if strings.Contains(errb, m) {
			tr.failf("%s printed a crash (%q) on stderr:\n%s", p.role, m, clip(errb, 1500))
			return ""
		}
	}
	code := p.code()
	if code == 0 || code > 128 {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(errb, "\n"), "\n") {
		if l == "" || isNote(l) {
			continue
		}
		if hasAnyPrefix(l, []string{"shmpc produce: ", "shmpc-c produce: "}) && strings.Contains(l, " items, ") && strings.Contains(l, " pages ") {
			continue // the summary line some paths print
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 {
		tr.failf("%s exited %d and printed %d error lines, want 1:\n%s", p.role, code, len(lines), clip(errb, 1500))
		return strings.Join(lines, "\n")
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			tr.failf("%s's error %q does not say %q", p.role, lines[0], w)
		}
	}
	return lines[0]
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
