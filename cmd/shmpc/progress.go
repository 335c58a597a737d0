package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/ring"
)

// Progress on stderr. On a terminal it is one live line, rewritten in
// place (\r) at most ten times a second: bytes delivered, the rate, the
// ETA when the stream's total is known, items delivered and the ring's
// fill. Elsewhere, with -v, it is one plain line every half second, in a
// fixed format (logs are read for it: change it only on purpose).

const (
	liveEvery  = 100 * time.Millisecond // the live line's shortest interval
	linesEvery = 500 * time.Millisecond // the plain lines' interval
	rateWindow = 2 * time.Second        // the live line's rate is over about this long
)

// progressElsewhereEnv, set to 1 in a command's environment, says that
// another process draws the terminal's progress line: run sets it for its
// producer child, whose consumer sibling shares the terminal.
const progressElsewhereEnv = "SHMPC_PROGRESS_ELSEWHERE"

// progress prints a ring's transfer state on stderr until stop.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

// startProgress starts printing r's transfer state on w for the command
// role: the live line when w is a terminal (unless another process draws
// it), plain lines when lines is set and w is not a terminal. It returns
// nil, on which stop does nothing, when there is nothing to print. r must
// stay mapped until stop.
func startProgress(w io.Writer, role string, r *ring.Ring, lines bool) *progress {
	term := isTerminal(w)
	if term && os.Getenv(progressElsewhereEnv) == "1" || !term && !lines {
		return nil
	}
	p := &progress{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		every := linesEvery
		if term {
			every = liveEvery
		}
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		live := newLiveLine(w, role, func() int { return termColumns(w) })
		lastBytes, lastT := r.Stats().Bytes, start
		for {
			select {
			case <-p.done:
				live.clear()
				return
			case now := <-t.C:
				s := sampleRing(r)
				if term {
					live.update(now, s)
					continue
				}
				rate := float64(s.bytes-lastBytes) / (1 << 30) / now.Sub(lastT).Seconds()
				lastBytes, lastT = s.bytes, now
				fmt.Fprintln(w, plainLine(role, s, rate))
			}
		}
	}()
	return p
}

// stop ends the progress display and, on a terminal, erases the live
// line, so that what follows starts on a clean line.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}

// progressSample is what a progress display shows of a ring at a moment.
type progressSample struct {
	items, bytes           uint64 // released so far (since the ring was made)
	fill, slots            uint64 // items in the ring, and its slots
	totalItems, totalBytes uint64 // the stream's intended totals (0: unknown)
}

func sampleRing(r *ring.Ring) progressSample {
	st := r.Stats()
	return progressSample{
		items: st.Items, bytes: st.Bytes,
		fill: r.Head() - r.Tail(), slots: uint64(r.Slots()),
		totalItems: r.StreamItems(), totalBytes: r.StreamBytes(),
	}
}

// plainLine is one line of -v progress off a terminal; rate is in GiB/s.
func plainLine(role string, s progressSample, rateGiB float64) string {
	return fmt.Sprintf("shmpc %s: %s delivered, %d items, %.2f GiB/s, ring %d/%d full",
		role, formatBytes(s.bytes), s.items, rateGiB, s.fill, s.slots)
}

// liveLine draws the one-line progress display of a terminal, rewritten
// in place. It is not safe for concurrent use.
type liveLine struct {
	w       io.Writer
	role    string
	columns func() int // the terminal's width (0: unknown)
	every   time.Duration
	last    time.Time  // the last draw (zero: none yet)
	samples []rateMark // recent samples, oldest first, for the rate
}

// rateMark is the byte count at a moment.
type rateMark struct {
	t     time.Time
	bytes uint64
}

// newLiveLine returns a live line on w for the command role; columns
// reports the terminal's width at each draw.
func newLiveLine(w io.Writer, role string, columns func() int) *liveLine {
	return &liveLine{w: w, role: role, columns: columns, every: liveEvery}
}

// update takes the sample s taken at now and redraws the line, unless it
// was drawn less than liveEvery ago.
func (l *liveLine) update(now time.Time, s progressSample) {
	l.samples = append(l.samples, rateMark{now, s.bytes})
	// Keep one sample at least rateWindow old, as the rate's base.
	for len(l.samples) > 2 && now.Sub(l.samples[1].t) >= rateWindow {
		l.samples = l.samples[1:]
	}
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		return
	}
	l.last = now
	msg := l.format(s)
	if n := l.columns(); n > 1 && len(msg) > n-1 {
		msg = msg[:n-1] // a wrapped line could not be rewritten in place
	}
	fmt.Fprintf(l.w, "\r%s\033[K", msg)
}

// clear erases the line if one was drawn.
func (l *liveLine) clear() {
	if !l.last.IsZero() {
		fmt.Fprint(l.w, "\r\033[K")
		l.last = time.Time{}
	}
}

// rate returns the bytes per second over the samples kept, and whether
// they span any time.
func (l *liveLine) rate() (float64, bool) {
	if len(l.samples) < 2 {
		return 0, false
	}
	a, b := l.samples[0], l.samples[len(l.samples)-1]
	d := b.t.Sub(a.t).Seconds()
	if d <= 0 || b.bytes < a.bytes {
		return 0, false
	}
	return float64(b.bytes-a.bytes) / d, true
}

// format is the line's text for s (ASCII only, so that it can be cut at
// any byte). What matters most comes first, as a narrow terminal cuts the
// end: bytes, rate, ETA, then items and the ring's fill.
func (l *liveLine) format(s progressSample) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shmpc %s: %s", l.role, formatBytes(s.bytes))
	if s.totalBytes > 0 {
		pct := 100 * float64(min(s.bytes, s.totalBytes)) / float64(s.totalBytes)
		fmt.Fprintf(&b, " of %s (%.0f%%)", formatBytes(s.totalBytes), pct)
	}
	rate, ok := l.rate()
	if ok {
		fmt.Fprintf(&b, ", %s", formatBytesPerSec(rate))
	}
	if s.totalBytes > 0 {
		switch {
		case s.bytes >= s.totalBytes:
			b.WriteString(", ETA 0s")
		case ok && rate > 0:
			left := float64(s.totalBytes-s.bytes) / rate
			fmt.Fprintf(&b, ", ETA %s", formatETA(left))
		default:
			b.WriteString(", ETA --")
		}
	}
	fmt.Fprintf(&b, ", %d", s.items)
	if s.totalItems > 0 {
		fmt.Fprintf(&b, " of %d", s.totalItems)
	}
	fmt.Fprintf(&b, " items, ring %d/%d", s.fill, s.slots)
	return b.String()
}

// formatETA formats a number of seconds, rounded up, as 45s, 12m05s or
// 3h07m; more than 100 hours is ">100h".
func formatETA(sec float64) string {
	if sec > 100*3600 {
		return ">100h"
	}
	d := time.Duration(math.Ceil(sec)) * time.Second
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// termColumns returns the width of the terminal w is, 0 when unknown.
func termColumns(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
