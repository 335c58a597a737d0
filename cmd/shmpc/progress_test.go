package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// draws splits what a live line wrote into the texts it drew (each
// "\r" TEXT "\033[K"), failing on anything else.
func draws(t *testing.T, out string) []string {
	t.Helper()
	var texts []string
	for _, part := range strings.Split(out, "\r")[1:] {
		text, ok := strings.CutSuffix(part, "\033[K")
		require.True(t, ok, "a draw not ending in erase-to-end-of-line: %q", part)
		require.NotContains(t, text, "\n", "a live line must not end a line")
		texts = append(texts, text)
	}
	require.True(t, out == "" || strings.HasPrefix(out, "\r"), "output before the first \\r: %q", out)
	return texts
}

// TestLiveLine: the line is rewritten in place, at most every liveEvery,
// with the rate over the recent samples and the ETA from the stream's
// total; clear erases it.
func TestLiveLine(t *testing.T) {
	var out bytes.Buffer
	l := newLiveLine(&out, "consume", func() int { return 0 })
	t0 := time.Unix(1000, 0)
	s := progressSample{fill: 3, slots: 8, totalItems: 40, totalBytes: 40 << 20}
	at := func(d time.Duration, items uint64) {
		s.items, s.bytes = items, items<<20
		l.update(t0.Add(d), s)
	}
	at(0, 0)
	require.Equal(t, []string{"shmpc consume: 0 B of 40.00 MiB (0%), ETA --, 0 of 40 items, ring 3/8"}, draws(t, out.String()))

	// 2 MiB/s for a second, sampled every 50 ms: ten draws, not twenty.
	out.Reset()
	for i := 1; i <= 20; i++ {
		at(time.Duration(i)*50*time.Millisecond, uint64(i/10))
	}
	got := draws(t, out.String())
	require.Len(t, got, 10, "draws in a second of updates every 50 ms")
	require.Equal(t, "shmpc consume: 2.00 MiB of 40.00 MiB (5%), 2.00 MiB/s, ETA 19s, 2 of 40 items, ring 3/8", got[len(got)-1])

	// The rate follows the last few seconds, not the whole run.
	out.Reset()
	for i := 1; i <= 60; i++ { // 3 s at 10 MiB/s
		at(time.Second+time.Duration(i)*50*time.Millisecond, uint64(2+i/2))
	}
	got = draws(t, out.String())
	require.Equal(t, "shmpc consume: 32.00 MiB of 40.00 MiB (80%), 10.00 MiB/s, ETA 1s, 32 of 40 items, ring 3/8", got[len(got)-1])

	out.Reset()
	at(5*time.Second, 40)
	require.Regexp(t, `^shmpc consume: 40.00 MiB of 40.00 MiB \(100%\), [\d.]+ MiB/s, ETA 0s, 40 of 40 items, ring 3/8$`, draws(t, out.String())[0])

	out.Reset()
	l.clear()
	require.Equal(t, "\r\033[K", out.String())
	out.Reset()
	l.clear()
	require.Empty(t, out.String(), "clear of a line not drawn")
}

// TestLiveLineUnknownTotal: a stream of unknown length (-stdin) shows no
// total and no ETA; a narrow terminal gets the line cut to its width.
func TestLiveLineUnknownTotal(t *testing.T) {
	var out bytes.Buffer
	cols := 0
	l := newLiveLine(&out, "produce", func() int { return cols })
	t0 := time.Unix(1000, 0)
	l.update(t0, progressSample{slots: 2})
	l.update(t0.Add(time.Second), progressSample{items: 5, bytes: 5 * 1000, fill: 2, slots: 2})
	got := draws(t, out.String())
	require.Equal(t, "shmpc produce: 4.88 KiB, 4.88 KiB/s, 5 items, ring 2/2", got[1])

	cols = 20
	out.Reset()
	l.update(t0.Add(2*time.Second), progressSample{items: 5, bytes: 5 * 1000, fill: 2, slots: 2})
	require.Equal(t, []string{"shmpc produce: 4.88"}, draws(t, out.String()))
}

// TestPlainLine: off a terminal, -v keeps the lines it always printed.
func TestPlainLine(t *testing.T) {
	s := progressSample{items: 12, bytes: 12 << 20, fill: 3, slots: 8, totalItems: 100, totalBytes: 100 << 20}
	require.Equal(t, "shmpc consume: 12.00 MiB delivered, 12 items, 0.25 GiB/s, ring 3/8 full", plainLine("consume", s, 0.25))
}

func TestFormatRateAndETA(t *testing.T) {
	for _, c := range []struct {
		bytes   uint64
		seconds float64
		want    string
	}{
		{0, 1, "0 B/s"},
		{100, 0, "0 B/s"},
		{100, 1, "100 B/s"},
		{1536, 1, "1.50 KiB/s"},
		{3 << 20, 2, "1.50 MiB/s"},
		{5 << 30, 2, "2.50 GiB/s"},
		{1023, 1, "1023 B/s"},
	} {
		require.Equal(t, c.want, formatRate(c.bytes, c.seconds), "%d bytes in %v s", c.bytes, c.seconds)
	}
	for sec, want := range map[float64]string{0: "0s", 0.2: "1s", 58.4: "59s", 59.6: "1m00s", 125: "2m05s", 3*3600 + 7*60: "3h07m", 1e9: ">100h"} {
		require.Equal(t, want, formatETA(sec), "%v s", sec)
	}
}

// openPTY returns the master and slave of a new pseudo-terminal of the
// given width, the slave with output post-processing off (so what the
// master reads is what was written).
func openPTY(t *testing.T, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	require.NoError(t, err)
	var n uint32
	var ioErr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			ioErr = fmt.Errorf("TIOCSPTLCK: %w", ioErr)
			return
		}
		if n, ioErr = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN); ioErr != nil {
			ioErr = fmt.Errorf("TIOCGPTN: %w", ioErr)
		}
	}))
	require.NoError(t, ioErr)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	sfd := int(s.Fd())
	tio, err := unix.IoctlGetTermios(sfd, unix.TCGETS)
	require.NoError(t, err)
	tio.Oflag &^= unix.OPOST
	require.NoError(t, unix.IoctlSetTermios(sfd, unix.TCSETS, tio))
	require.NoError(t, unix.IoctlSetWinsize(sfd, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}))
	return m, s
}

// ptyReader collects what the pty's master reads until every slave is
// closed (EIO).
func ptyReader(m *os.File) (*syncBuffer, <-chan struct{}) {
	out, done := new(syncBuffer), make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	return out, done
}

// TestProgressOnTerminal runs a consumer whose stderr is a terminal: it
// draws one live line, rewritten in place (\r), with the ETA of a stream
// of known length, cut to the terminal's width (the last column left
// free, so that the line never wraps); the summary that ends it starts
// on a cleared line and is intact.
func TestProgressOnTerminal(t *testing.T) {
	const cols = 80 // wide enough for the ETA, too narrow for the whole line
	m, s := openPTY(t, cols)
	out, outDone := ptyReader(m)
	name := ringName(t)
	c := startCustom(t, 2*time.Minute, []string{"consume", "-name", name}, func(st *started) { st.c.Stderr = s })
	s.Close() // the consumer holds the only slave: its exit ends the reader
	p := start(t, 2*time.Minute, nil, "produce", "-name", name, "-slots", "8", "-slot-size", "4096", "-count", "100000000", "-hugepages", "off")

	live := regexp.MustCompile(`\rshmpc consume: [^\r\n]+ of [^\r\n]+, ETA \S+, \d[^\r\n]*\x1b\[K`)
	deadline := time.Now().Add(30 * time.Second)
	for len(live.FindAllString(out.String(), -1)) < 3 {
		require.True(t, time.Now().Before(deadline), "no three live lines within 30s; terminal got:\n%q", out.String())
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, p.c.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, time.Minute).code)
	cres := c.wait(t, time.Minute)
	require.Equal(t, 0, cres.code, "consumer stderr:\n%q", out.String())
	select {
	case <-outDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not report the consumer's exit (EIO) within 10s")
	}
	text := out.String()
	last := strings.LastIndex(text, "\r\033[K")
	require.GreaterOrEqual(t, last, 0, "the live line was never cleared: %q", text)
	require.Regexp(t, `^shmpc consume: \d+ items, [\d.]+ [KMG]?i?B in [\d.]+ s \([\d.]+ [KMG]?i?B/s\), 0 integrity errors, pages normal\n$`,
		text[last+len("\r\033[K"):], "after the cleared line")
	cut := false
	for _, d := range draws(t, text[:last]) {
		require.Less(t, len(d), cols, "a live line wider than the terminal: %q", d)
		cut = cut || len(d) == cols-1
	}
	require.True(t, cut, "no live line was cut to the terminal's width")
	requireNoLeftovers(t, name)
}

// TestRunProgressOnTerminal: under run, only the consumer child draws the
// live line on a shared terminal; run's own summary is intact.
func TestRunProgressOnTerminal(t *testing.T) {
	m, s := openPTY(t, 120)
	out, outDone := ptyReader(m)
	items := 200000 // a run of seconds: the consumer draws
	if raceEnabled {
		items = 20000
	}
	r := startCustom(t, 2*time.Minute, []string{"run", "-slots", "4", "-slot-size", "4096", "-count", strconv.Itoa(items), "-hugepages", "off"},
		func(st *started) { st.c.Stderr = s })
	s.Close()
	res := r.wait(t, 2*time.Minute)
	select {
	case <-outDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not report run's exit (EIO) within 10s")
	}
	text := out.String()
	require.Equal(t, 0, res.code, "terminal:\n%q", text)
	require.Contains(t, text, "\rshmpc consume:", "the consumer child drew no live line in a run of seconds")
	require.NotContains(t, text, "\rshmpc produce:", "the producer child drew on the terminal too")
	require.Regexp(t, `(?m)^shmpc run: `+strconv.Itoa(items)+` items, [\d.]+ MiB in [\d.]+ s: [\d.]+ [KMG]?i?B/s, 0 integrity errors, 4 slots of 4KiB, pages normal\n\z`, text)
}

// TestRunJSONWorkers: run -json reports the consumer's worker count, its
// default (the number of CPUs) when -workers is left out.
func TestRunJSONWorkers(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int
	}{{nil, runtime.NumCPU()}, {[]string{"-workers", "3"}, 3}} {
		args := append([]string{"run", "-json", "-slots", "2", "-slot-size", "4096", "-count", "20", "-hugepages", "off"}, c.args...)
		r := shmpc(t, 2*time.Minute, nil, args...)
		require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
		var sum runSummary
		require.True(t, lastJSON([]byte(r.stdout), &sum), "stdout: %q", r.stdout)
		require.Equal(t, c.want, sum.Workers, "%v", c.args)
		requireNoLeftovers(t, sum.Name)
	}
}
