package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/testutil"
)

// The test binary doubles as the shmpc command: with this variable set it
// runs main's logic on its arguments (os/exec's helper-process pattern), so
// tests start real producer and consumer processes without a build step.
const asMainEnv = "SHMPC_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if spec := os.Getenv(plantEnv); spec != "" {
		os.Exit(plant(spec))
	}
	goleak.VerifyTestMain(m)
}

// ringName returns a NAME unique to the test and this process, and makes
// the test fail (after removing them) if any of the ring's objects remain
// when it ends.
func ringName(t *testing.T) string { return testutil.RingName(t, "t") }

// requireNoLeftovers fails the test if any object of ring name exists, and
// removes what it finds (only the ring's own, exactly named objects).
func requireNoLeftovers(t *testing.T, name string) { testutil.RequireNoLeftovers(t, name) }

// cmd prepares the shmpc command with args. Every command gets a hard
// bound through ctx.
func cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, os.Args[0], args...)
	c.Env = append(os.Environ(), asMainEnv+"=1", "GORACE=atexit_sleep_ms=0")
	c.WaitDelay = 5 * time.Second
	return c
}

type result struct {
	code           int
	stdout, stderr string
}

// shmpc runs the command to completion within timeout.
func shmpc(t *testing.T, timeout time.Duration, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("shmpc %s did not finish within %v; stderr:\n%s", strings.Join(args, " "), timeout, errb.String())
	}
	return result{code: exitStatus(t, err), stdout: out.String(), stderr: errb.String()}
}

func exitStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("run: %v", err)
	return -1
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer = testutil.SyncBuffer

// started is a command running in the background.
type started struct {
	c      *exec.Cmd
	out    *syncBuffer
	errb   *syncBuffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

func start(t *testing.T, timeout time.Duration, stdin []byte, args ...string) *started {
	t.Helper()
	return startCustom(t, timeout, args, func(s *started) {
		if stdin != nil {
			s.c.Stdin = bytes.NewReader(stdin)
		}
	})
}

// startCustom starts the command with args, bounded by timeout, after set
// adjusted it (stdin, stdout, environment); a cleanup kills it.
func startCustom(t *testing.T, timeout time.Duration, args []string, set func(*started)) *started {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s := &started{c: cmd(ctx, args...), out: new(syncBuffer), errb: new(syncBuffer), done: make(chan struct{}), cancel: cancel}
	s.c.Stdout, s.c.Stderr = s.out, s.errb
	set(s)
	require.NoError(t, s.c.Start())
	go func() {
		s.err = s.c.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.c.Process.Kill()
		<-s.done
		cancel()
	})
	return s
}

// waitStderr waits until the command's stderr contains want.
func (s *started) waitStderr(t *testing.T, want string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !strings.Contains(s.errb.String(), want) {
		select {
		case <-s.done:
			t.Fatalf("%v exited before printing %q; stderr:\n%s", s.c.Args[1:], want, s.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not print %q within %v; stderr:\n%s", s.c.Args[1:], want, bound, s.errb.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// exited returns when the command exits, failing the test after bound.
func (s *started) exited(t *testing.T, bound time.Duration) time.Time {
	t.Helper()
	select {
	case <-s.done:
		return time.Now()
	case <-time.After(bound):
		t.Fatalf("%v did not exit within %v; stderr:\n%s", s.c.Args[1:], bound, s.errb.String())
	}
	return time.Time{}
}

// wait waits for the command; a command still running after the bound is
// a test failure.
func (s *started) wait(t *testing.T, bound time.Duration) result {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(bound):
		_ = s.c.Process.Kill()
		<-s.done
		t.Fatalf("%v did not finish within %v; stderr:\n%s", s.c.Args[1:], bound, s.errb.String())
	}
	return result{code: exitStatus(t, s.err), stdout: s.out.String(), stderr: s.errb.String()}
}

type manifestLine struct {
	Seq    uint64 `json:"seq"`
	Len    int    `json:"len"`
	CRC32C uint32 `json:"crc32c"`
}

// readManifest returns the manifest's lines by sequence number, failing on
// a malformed line.
func readManifest(t *testing.T, path string) []manifestLine {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []manifestLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m manifestLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "manifest line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// checkDelivery verifies a manifest against the benchmark payload (internal/payload) of a
// stream of items items of slotSize bytes (the last one lastLen): every
// sequence number at least once, each with the payload's length and CRC,
// and at most maxRepeats of them twice (none more often): the items a dead
// consumer had acquired and not released, at most the ring's slot count.
// maxRepeats 0 means exactly once.
func checkDelivery(t *testing.T, lines []manifestLine, items uint64, slotSize, lastLen int, maxRepeats int) {
	t.Helper()
	require.NoError(t, deliveryError(lines, items, slotSize, lastLen, maxRepeats))
}

// deliveryError is checkDelivery's verdict as an error (nil: as promised).
func deliveryError(lines []manifestLine, items uint64, slotSize, lastLen int, maxRepeats int) error {
	seen := make(map[uint64]int, len(lines))
	for _, m := range lines {
		if m.Seq >= items {
			return fmt.Errorf("item %d delivered, beyond the stream of %d", m.Seq, items)
		}
		want := slotSize
		if m.Seq == items-1 {
			want = lastLen
		}
		if m.Len != want {
			return fmt.Errorf("item %d has length %d, want %d", m.Seq, m.Len, want)
		}
		if m.CRC32C != payload.CRC(m.Seq, m.Len) {
			return fmt.Errorf("item %d is not the payload pattern (crc32c %#x)", m.Seq, m.CRC32C)
		}
		seen[m.Seq]++
	}
	repeats := 0
	for seq := uint64(0); seq < items; seq++ {
		switch n := seen[seq]; {
		case n == 0:
			return fmt.Errorf("item %d never delivered", seq)
		case n == 2:
			repeats++
		case n > 2:
			return fmt.Errorf("item %d delivered %d times", seq, n)
		}
	}
	if repeats > maxRepeats {
		return fmt.Errorf("%d items delivered twice, more than the %d allowed", repeats, maxRepeats)
	}
	return nil
}

func tempFile(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}

// TestDeliveryCheckCanFail feeds the manifest check the failures it is
// there to catch.
func TestDeliveryCheckCanFail(t *testing.T) {
	line := func(seq uint64) manifestLine {
		return manifestLine{Seq: seq, Len: 4096, CRC32C: payload.CRC(seq, 4096)}
	}
	stream := func(n uint64) []manifestLine {
		var out []manifestLine
		for s := range n {
			out = append(out, line(s))
		}
		return out
	}
	require.NoError(t, deliveryError(stream(20), 20, 4096, 4096, 0))
	eightTwice := append(stream(20), stream(8)...)
	require.NoError(t, deliveryError(eightTwice, 20, 4096, 4096, 8))
	for what, c := range map[string]struct {
		lines []manifestLine
		max   int
	}{
		"a repeat where none is allowed": {append(stream(20), line(3)), 0},
		"nine repeats, eight allowed":    {append(stream(20), stream(9)...), 8},
		"an item three times":            {append(append(stream(20), line(5)), line(5)), 8},
		"a missing item":                 {stream(19), 0},
		"an item beyond the stream":      {append(stream(20), line(20)), 0},
		"a wrong CRC":                    {append(stream(19), manifestLine{Seq: 19, Len: 4096, CRC32C: 1}), 0},
		"a wrong length":                 {append(stream(19), manifestLine{Seq: 19, Len: 4095, CRC32C: payload.CRC(19, 4095)}), 0},
	} {
		err := deliveryError(c.lines, 20, 4096, 4096, c.max)
		require.Error(t, err, what)
		t.Logf("%s: %v", what, err)
	}
}
