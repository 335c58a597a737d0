package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// runSummary is the one-line JSON object of `run -json` (the CLI contract,
// README "The command": at least items, bytes, seconds, gib_per_s,
// integrity_errors and pages).
//
// Seconds is the consumer's window: from the producer's first Reserve
// (once it has created and pre-touched the ring; it does not wait for the
// consumer, whose attach overlaps the first items) to the consumer's last
// release. WallSeconds is the whole job: from the start of run, before it
// starts its children, until both are reaped; it adds process start-up,
// the ring's creation and pre-touch, and tear-down.
type runSummary struct {
	Name            string  `json:"name"`
	Items           uint64  `json:"items"`
	Bytes           uint64  `json:"bytes"`
	Seconds         float64 `json:"seconds"`
	WallSeconds     float64 `json:"wall_seconds"`
	GiBPerSec       float64 `json:"gib_per_s"`
	IntegrityErrors uint64  `json:"integrity_errors"`
	Pages           string  `json:"pages"`
	Slots           int     `json:"slots"`
	SlotSize        int64   `json:"slot_size"`
	Workers         int     `json:"workers"` // the consumer's, its default when -workers is left out
	ProducerExit    int     `json:"producer_exit"`
	ConsumerExit    int     `json:"consumer_exit"`
}

// runDefaultBytes is what run moves when neither -count nor -bytes is
// given.
const runDefaultBytes = 4 << 30

func cmdRun(args []string, stdout, stderr io.Writer) error {
	start := time.Now()
	fs := newFlagSet("run", stderr, "[produce and consume flags] [-json]")
	var pf produceFlags
	pf.register(fs)
	fs.Lookup("bytes").Usage += fmt.Sprintf(" (%s when neither -count nor -bytes is given)", formatSize(runDefaultBytes))
	var cf consumeFlags
	cf.register(fs, false)
	jsonOut := fs.Bool("json", false, "print the summary as one JSON object, the last line of stdout")
	verbose := fs.Bool("v", false, "report progress and notes on stderr even when it is not a terminal")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := pf.check(false); err != nil {
		return err
	}
	cf.peerFlags = pf.peerFlags
	if err := cf.check(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("run-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))

	// The consumer gets the flags it shares with the producer; both get
	// -json so run can read their summaries.
	common := []string{"-name", name, "-json", "-wait", pf.wait.String(), "-peer-timeout", pf.peerTimeout.String(),
		"-stall-timeout", pf.stall.String(), "-spin", pf.spin.String()}
	if *verbose {
		common = append(common, "-v")
	}
	cargs := append([]string{"consume"}, common...)
	if cf.workers > 0 {
		cargs = append(cargs, "-workers", strconv.Itoa(cf.workers))
	}
	if cf.manifest != "" {
		cargs = append(cargs, "-manifest", cf.manifest)
	}
	pargs := append([]string{"produce"}, common...)
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "slots", "slot-size", "count", "bytes", "hugepages", "mlock", "madvise", "pretouch", "perm", "fresh":
			pargs = append(pargs, "-"+f.Name+"="+f.Value.String())
		}
	})
	if !pf.count.set && !pf.bytes.set {
		pargs = append(pargs, "-bytes="+formatSize(runDefaultBytes))
	}

	// Signals go to run; the children sit in their own process group (so a
	// terminal's ^C reaches run only) and die with run (PR_SET_PDEATHSIG).
	// A signal to run ends the stream gracefully: run passes SIGTERM on to
	// the producer, which ends the stream at its head; the consumer drains.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var cOut, pOut bytes.Buffer
	cons := child(exe, cargs, &cOut, stderr, 0)
	if err := cons.Start(); err != nil {
		return fmt.Errorf("start consumer: %w", err)
	}
	prod := child(exe, pargs, &pOut, stderr, cons.Process.Pid)
	// One live progress line on a terminal: the consumer's.
	prod.Env = append(os.Environ(), progressElsewhereEnv+"=1")
	if err := prod.Start(); err != nil {
		_ = cons.Process.Kill()
		_ = cons.Wait()
		return fmt.Errorf("start producer: %w", err)
	}
	pDone := make(chan error, 1)
	go func() { pDone <- prod.Wait() }()
	cDone := make(chan error, 1)
	go func() { cDone <- cons.Wait() }()

	var pErr, cErr error
	pRunning, cRunning := true, true
	var killTimer <-chan time.Time
	for pRunning || cRunning {
		select {
		case pErr = <-pDone:
			pRunning = false
		case cErr = <-cDone:
			cRunning = false
		case <-sigs:
			if pRunning {
				_ = prod.Process.Signal(syscall.SIGTERM)
			} else if cRunning {
				_ = cons.Process.Signal(syscall.SIGTERM)
			}
			if killTimer == nil {
				killTimer = time.After(30 * time.Second)
			}
		case <-killTimer:
			// Children that ignore a graceful stop for 30 s are killed.
			if pRunning {
				_ = prod.Process.Kill()
			}
			if cRunning {
				_ = cons.Process.Kill()
			}
		}
	}
	wall := time.Since(start)
	pCode, cCode := childCode(pErr), childCode(cErr)
	var ps produceSummary
	var cs consumeSummary
	pJSON := lastJSON(pOut.Bytes(), &ps)
	cJSON := lastJSON(cOut.Bytes(), &cs)

	sum := runSummary{
		Name: name, Items: cs.Items, Bytes: cs.Bytes, Seconds: cs.Seconds, WallSeconds: wall.Seconds(),
		IntegrityErrors: cs.IntegrityErrors, Pages: ps.Pages, Slots: pf.slots, SlotSize: pf.slotSize.n,
		Workers: cf.workers, ProducerExit: pCode, ConsumerExit: cCode,
	}
	if sum.Workers == 0 {
		sum.Workers = runtime.NumCPU() // the consumer's default (consumer.Options.Workers)
	}
	if sum.Pages == "" {
		sum.Pages = cs.Pages
	}
	sum.GiBPerSec = gibPerSec(sum.Bytes, sum.Seconds)
	if *jsonOut {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stderr, "shmpc run: %d items, %s in %.3f s: %s, %d integrity errors, %d slots of %s, pages %s\n",
			sum.Items, formatBytes(sum.Bytes), sum.Seconds, formatRate(sum.Bytes, sum.Seconds), sum.IntegrityErrors,
			sum.Slots, formatSize(sum.SlotSize), sum.Pages)
	}
	code := max(pCode, cCode)
	if (!pJSON || !cJSON) && code == 0 {
		code = exitError
		fmt.Fprintln(stderr, "shmpc run: a child process gave no summary")
	}
	if code != 0 {
		return &codeError{code: code}
	}
	return nil
}

// child prepares a child shmpc process. pgid 0 makes it the leader of a
// new process group; otherwise it joins pgid's group.
func child(exe string, args []string, stdout *bytes.Buffer, stderr io.Writer, pgid int) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// childCode returns a child's exit status; death by a signal counts as an
// error (1).
func childCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode()
	}
	return exitError
}

// lastJSON decodes the last line of out that is a JSON object into v.
func lastJSON(out []byte, v any) bool {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 && l[0] == '{' {
			last = append(last[:0], l...)
		}
	}
	return last != nil && json.Unmarshal(last, v) == nil
}
