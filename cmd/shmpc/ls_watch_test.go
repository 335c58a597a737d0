package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// lsRingJSON returns ring name's object from one `ls -json`, or nil.
func lsRingJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	r := shmpc(t, 30*time.Second, nil, "ls", "-json")
	require.Equal(t, 0, r.code, r.stderr)
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue // no ring at all on the machine
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["name"] == name {
			return m
		}
	}
	return nil
}

// TestLsCountersAfterRun: after a produce and a consume of a known -count,
// stopped by the fault hook after the drain and before the ring is removed,
// the ring's counters read through the library and through `ls -json` say
// exactly what was moved.
func TestLsCountersAfterRun(t *testing.T) {
	const items, size = 50, 64 << 10
	name := ringName(t)
	p := startCustom(t, 2*time.Minute, []string{"produce", "-name", name, "-slots", "4", "-slot-size", "64KiB",
		"-count", fmt.Sprint(items), "-hugepages", "off", "-wait", "1m"}, func(s *started) {
		s.c.Env = append(s.c.Env, faultEnv+"=produce-before-cleanup")
	})
	c := start(t, 2*time.Minute, nil, "consume", "-name", name, "-wait", "1m")
	p.waitStderr(t, "shmpc: fault produce-before-cleanup", time.Minute)

	n, err := ringobj.For(name)
	require.NoError(t, err)
	seg, err := shm.Attach(n.Key, true, shm.Options{Lock: shm.Off})
	require.NoError(t, err)
	r, err := ring.Open(seg.Bytes())
	require.NoError(t, err)
	got := r.Counters()
	require.NoError(t, seg.Detach())
	t.Logf("counters: %+v", got)
	require.Equal(t, uint64(items), got.ItemsCommitted, "items committed")
	require.Equal(t, uint64(items*size), got.BytesCommitted, "bytes committed")
	require.Equal(t, uint64(items), got.ItemsReleased, "items released")
	require.Equal(t, uint64(items*size), got.BytesReleased, "bytes released")
	require.Zero(t, got.IntegrityErrors)
	require.Zero(t, got.ProducerPeerLosses)
	require.Zero(t, got.ConsumerPeerLosses)
	require.NotZero(t, got.ProducerSleeps+got.ConsumerSleeps, "a run of 50 items in which neither side ever slept")
	require.NotZero(t, got.ProducerWakes+got.ConsumerWakes, "nobody woke a sleeper")

	m := lsRingJSON(t, name)
	require.NotNil(t, m, "ring %s not listed", name)
	for k, want := range map[string]uint64{
		"items_committed": items, "bytes_committed": items * size, "items_released": items, "bytes_released": items * size,
		"integrity_errors": 0, "producer_sleeps": got.ProducerSleeps, "producer_wakes": got.ProducerWakes,
		"consumer_sleeps": got.ConsumerSleeps, "consumer_wakes": got.ConsumerWakes,
		"producer_peer_losses": 0, "consumer_peer_losses": 0, "head": items, "tail": items,
	} {
		require.Contains(t, m, k)
		require.EqualValues(t, want, m[k], k)
	}

	// The producer hangs in the hook: kill it; the consumer, whose producer is
	// gone, removes the ring (or gc does, if it left already).
	require.NoError(t, p.c.Process.Kill())
	p.wait(t, 30*time.Second)
	require.Equal(t, 0, c.wait(t, time.Minute).code, c.errb.String())
	shmpc(t, 30*time.Second, nil, "gc", "-name", name)
}

// TestLsWatchUsage: -watch takes a duration of at least minWatch.
func TestLsWatchUsage(t *testing.T) {
	for _, v := range []string{"1ms", "-1s", "x"} {
		r := shmpc(t, 30*time.Second, nil, "ls", "-watch", v)
		oneLine(t, r, exitUsage, "-watch")
	}
}

// openPty opens a pseudo-terminal pair (the test skips without one).
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here (open /dev/ptmx: %v)", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0), "unlock the pty")
	num, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	require.NoError(t, err, "pty number")
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", num), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal here (open /dev/pts/%d: %v)", num, err)
	}
	return master, slave
}

// TestLsWatchTerminal: on a terminal (a pty), `ls -watch` clears the
// screen and redraws each interval, showing the ring, its fill and its
// live producer; SIGINT ends it with exit status 0.
func TestLsWatchTerminal(t *testing.T) {
	name := ringName(t)
	p := start(t, 2*time.Minute, nil, "produce", "-name", name, "-slots", "3", "-slot-size", "8KiB", "-count", "20",
		"-hugepages", "off", "-wait", "1m")
	n, _ := ringobj.For(name)
	waitFull(t, n, 3)

	master, slave := openPty(t)
	var out syncBuffer
	readDone := make(chan struct{})
	reading := false
	t.Cleanup(func() { // after the command's own cleanup killed it (cleanups run last first)
		if reading {
			select {
			case <-readDone:
			case <-time.After(10 * time.Second):
				t.Error("the pty reader did not end within 10s of the command")
			}
		}
		master.Close()
	})
	w := startCustom(t, time.Minute, []string{"ls", "-watch", "100ms"}, func(s *started) { s.c.Stdout = slave })
	slave.Close() // the command has its copy: the reader ends (EIO) when it exits
	reading = true
	go func() {
		defer close(readDone)
		_, _ = io.Copy(&out, master)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		s := out.String()
		if strings.Count(s, clearScreen) >= 3 && strings.Contains(s[strings.LastIndex(s, clearScreen):], name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three frames showing %s within 30s; output so far:\n%q", name, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, w.c.Process.Signal(os.Interrupt))
	require.Equal(t, 0, w.wait(t, 20*time.Second).code, w.errb.String())
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the pty did not report the end of ls -watch within 10s")
	}
	s := out.String()
	last := s[strings.LastIndex(s, clearScreen):]
	var row string
	for _, line := range strings.Split(last, "\n") {
		if strings.HasPrefix(line, name+" ") {
			row = line
		}
	}
	require.NotEmpty(t, row, "last frame without a row for %s:\n%s", name, last)
	require.Contains(t, last, "ITEMS/S")
	require.Contains(t, row, "3/3", "the full ring's fill")
	require.Contains(t, row, fmt.Sprintf("%d alive", p.c.Process.Pid))
	t.Logf("last frame:\n%s", last)

	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	c := start(t, time.Minute, nil, "consume", "-name", name)
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	require.Equal(t, 0, c.wait(t, time.Minute).code)
}

// TestLsWatchPlainAndJSON: not on a terminal, `ls -watch` prints one block
// per interval without terminal controls, and `ls -watch -json` one JSON
// line per ring per interval with the `ls -json` fields and rates; while
// items flow (a -stdin producer fed here, and a consumer), the rates of the
// ring are positive. SIGTERM ends both with exit status 0.
func TestLsWatchPlainAndJSON(t *testing.T) {
	name := ringName(t)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close(); pw.Close() })
	p := startCustom(t, 2*time.Minute, []string{"produce", "-name", name, "-stdin", "-slots", "4", "-slot-size", "4096",
		"-hugepages", "off", "-wait", "1m"}, func(s *started) { s.c.Stdin = pr })
	pr.Close()
	c := start(t, 2*time.Minute, nil, "consume", "-name", name, "-wait", "1m")
	waitRing(t, name)
	js := start(t, time.Minute, nil, "ls", "-watch", "100ms", "-json")
	plain := start(t, time.Minute, nil, "ls", "-watch", "100ms")

	// Feed items until the JSON shows the ring moving them.
	chunk := bytes.Repeat([]byte("shmpc ls -watch "), 4096/16)
	var moving map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for moving == nil {
		require.True(t, time.Now().Before(deadline), "no JSON line with positive rates for %s within 30s:\n%s", name, js.out.String())
		_, err := pw.Write(chunk)
		require.NoError(t, err, "feed the producer")
		time.Sleep(2 * time.Millisecond)
		for _, line := range strings.Split(js.out.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["name"] != name {
				continue
			}
			if ips, _ := m["items_per_s"].(float64); ips > 0 {
				if mbps, _ := m["mb_per_s"].(float64); mbps > 0 {
					moving = m
				}
			}
		}
	}
	t.Logf("a JSON line of the moving ring: %v", moving)
	for _, k := range []string{"name", "key", "slots", "slot_size", "pages", "head", "tail", "owner_uid",
		"producer_pid", "producer_alive", "consumer_pid", "consumer_alive", "items_released", "bytes_released",
		"fill", "interval_s", "items_per_s", "mb_per_s", "producer_sleeps_per_s", "consumer_sleeps_per_s"} {
		require.Contains(t, moving, k)
	}
	require.LessOrEqual(t, moving["fill"].(float64), float64(4))
	require.Equal(t, true, moving["producer_alive"])
	require.Equal(t, true, moving["consumer_alive"])

	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(plain.out.String(), "shmpc ls -watch 100ms") < 2 || !strings.Contains(plain.out.String(), name) {
		require.True(t, time.Now().Before(deadline), "plain ls -watch printed no two blocks with %s within 30s:\n%s", name, plain.out.String())
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, pw.Close()) // end of the stream: the consumer drains, the ring goes
	require.Equal(t, 0, p.wait(t, time.Minute).code, p.errb.String())
	require.Equal(t, 0, c.wait(t, time.Minute).code, c.errb.String())
	for _, w := range []*started{js, plain} {
		require.NoError(t, w.c.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, w.wait(t, 20*time.Second).code, w.errb.String())
	}
	out := plain.out.String()
	require.NotContains(t, out, "\x1b", "terminal controls in plain output")
	require.True(t, strings.HasSuffix(out, "\n\n"), "a block ends with an empty line:\n%s", out)
	for _, line := range strings.Split(strings.TrimSpace(js.out.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "not one JSON object per line: %q", line)
	}
}

// TestWatchRowsUntrusted: whatever two samples of a ring's shared words say
// (a ring scribbled between them, counters that wrapped or went back, any
// interval), a row's fill is within 0..slots, each rate is absent or finite
// and not negative (and exact when the counter went forward), and a frame
// of such rows is a few lines of bounded width.
func TestWatchRowsUntrusted(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		word := rapid.OneOf(rapid.Uint64(), rapid.Uint64Range(0, 1000), rapid.Just(uint64(math.MaxUint64)))
		sample := func(label string) ringInfo {
			return ringInfo{
				Name: "r", ID: 1, State: rapid.SampledFrom([]string{"ok", "ok", "no valid header: x"}).Draw(t, label+"State"),
				Slots: rapid.IntRange(-1, ring.MaxSlots).Draw(t, label+"Slots"),
				Head:  word.Draw(t, label+"Head"), Tail: word.Draw(t, label+"Tail"),
				lsCounters: lsCounters{
					ItemsCommitted: word.Draw(t, label+"ItemsCommitted"), BytesCommitted: word.Draw(t, label+"BytesCommitted"),
					ItemsReleased: word.Draw(t, label+"ItemsReleased"), BytesReleased: word.Draw(t, label+"BytesReleased"),
					ProducerSleeps: word.Draw(t, label+"ProducerSleeps"), ConsumerSleeps: word.Draw(t, label+"ConsumerSleeps"),
					ProducerWakes: word.Draw(t, label+"ProducerWakes"), ConsumerWakes: word.Draw(t, label+"ConsumerWakes"),
				},
			}
		}
		p, c := sample("prev"), sample("cur")
		dt := time.Duration(rapid.Int64Range(-int64(time.Second), int64(time.Hour)).Draw(t, "dt"))
		rows := watchRows([]ringInfo{p}, []ringInfo{c}, dt)
		if len(rows) != 1 {
			t.Fatalf("%d rows for one ring", len(rows))
		}
		row := rows[0]
		if row.Fill > uint64(max(c.Slots, 0)) {
			t.Fatalf("fill %d of %d slots (head %d, tail %d)", row.Fill, c.Slots, c.Head, c.Tail)
		}
		for _, r := range []struct {
			what      string
			got       *float64
			prev, cur uint64
			unit      float64
		}{
			{"items", row.ItemsPerS, p.ItemsReleased, c.ItemsReleased, 1},
			{"MB", row.MBPerS, p.BytesReleased, c.BytesReleased, 1e6},
			{"committed", row.CommittedPerS, p.ItemsCommitted, c.ItemsCommitted, 1},
			{"producer sleeps", row.ProducerSleepsPerS, p.ProducerSleeps, c.ProducerSleeps, 1},
			{"consumer sleeps", row.ConsumerSleepsPerS, p.ConsumerSleeps, c.ConsumerSleeps, 1},
			{"producer wakes", row.ProducerWakesPerS, p.ProducerWakes, c.ProducerWakes, 1},
			{"consumer wakes", row.ConsumerWakesPerS, p.ConsumerWakes, c.ConsumerWakes, 1},
		} {
			known := p.State == "ok" && c.State == "ok" && dt > 0 && r.cur >= r.prev
			if (r.got != nil) != known {
				t.Fatalf("%s rate present %v, want %v (%d -> %d in %v)", r.what, r.got != nil, known, r.prev, r.cur, dt)
			}
			if r.got == nil {
				continue
			}
			if v := *r.got; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("%s rate %v", r.what, v)
			}
			if want := float64(r.cur-r.prev) / r.unit / dt.Seconds(); *r.got != want {
				t.Fatalf("%s rate %v, want %v", r.what, *r.got, want)
			}
		}
		var b bytes.Buffer
		if err := writeFrame(&b, rows, time.Second, time.Now(), rapid.Bool().Draw(t, "tty")); err != nil {
			t.Fatalf("writeFrame: %v", err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if len(line) > 300 {
				t.Fatalf("frame line of %d bytes: %q", len(line), line)
			}
		}
		if err := writeJSONRows(&b, rows); err != nil {
			t.Fatalf("writeJSONRows: %v", err)
		}
	})
}

// TestWatchFrameWriteError: a frame that cannot be written is an error
// (ls -watch then exits 1), not a silent loop.
func TestWatchFrameWriteError(t *testing.T) {
	err := writeFrame(failWriter{}, nil, time.Second, time.Now(), false)
	require.ErrorIs(t, err, errWrite)
	require.ErrorIs(t, writeJSONRows(failWriter{}, []watchRow{{}}), errWrite)
}

var errWrite = errors.New("write failed")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }
