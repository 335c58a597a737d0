package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"
)

// minWatch is the shortest interval `ls -watch` takes: every frame attaches
// every segment on the machine.
const minWatch = 10 * time.Millisecond

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// watchRow is one ring in one frame of `ls -watch`: what `ls -json` shows,
// the ring's fill, and the rates of its counters over the last interval.
// A rate is absent (nil) when it cannot be known: the ring is new in this
// frame, could not be read, or a counter went back (scribbled, or a new
// ring of the same NAME with the same segment id).
type watchRow struct {
	ringInfo
	Fill               uint64   `json:"fill"`                  // head-tail: items published and not released, within 0..slots
	Interval           float64  `json:"interval_s"`            // seconds since the previous frame
	ItemsPerS          *float64 `json:"items_per_s,omitempty"` // items released
	MBPerS             *float64 `json:"mb_per_s,omitempty"`    // bytes released, in 10^6 bytes
	CommittedPerS      *float64 `json:"items_committed_per_s,omitempty"`
	ProducerSleepsPerS *float64 `json:"producer_sleeps_per_s,omitempty"`
	ConsumerSleepsPerS *float64 `json:"consumer_sleeps_per_s,omitempty"`
	ProducerWakesPerS  *float64 `json:"producer_wakes_per_s,omitempty"`
	ConsumerWakesPerS  *float64 `json:"consumer_wakes_per_s,omitempty"`
}

// watchRings is `ls -watch every`: it samples every ring each interval
// and shows the rates since the previous sample, until SIGINT or SIGTERM
// (then it returns nil: exit 0). On a terminal each frame replaces the
// last; otherwise each is printed after the previous one, followed by an
// empty line. With jsonOut it prints one JSON object per ring per
// interval instead, from the first interval on (rates need two samples).
func watchRings(stdout io.Writer, every time.Duration, jsonOut bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := !jsonOut && isTerminal(stdout)
	prev, err := listRings()
	if err != nil {
		return err
	}
	prevAt := time.Now()
	if !jsonOut {
		if err := writeFrame(stdout, watchRows(nil, prev, 0), every, prevAt, tty); err != nil {
			return err
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur, err := listRings()
		if err != nil {
			return err
		}
		now := time.Now()
		rows := watchRows(prev, cur, now.Sub(prevAt))
		prev, prevAt = cur, now
		if jsonOut {
			err = writeJSONRows(stdout, rows)
		} else {
			err = writeFrame(stdout, rows, every, now, tty)
		}
		if err != nil {
			return err
		}
	}
}

// watchRows pairs each ring of cur with its previous sample (same NAME and
// segment id) and computes its fill and rates over dt.
func watchRows(prev, cur []ringInfo, dt time.Duration) []watchRow {
	before := make(map[string]ringInfo, len(prev))
	for _, p := range prev {
		before[watchKey(p)] = p
	}
	rows := make([]watchRow, 0, len(cur))
	for _, c := range cur {
		p, ok := before[watchKey(c)]
		rows = append(rows, watchRowOf(p, c, ok, dt))
	}
	return rows
}

func watchKey(ri ringInfo) string { return ri.Name + "\x00" + strconv.Itoa(ri.ID) }

// watchRowOf is the row of ring c, whose previous sample p exists when
// seen. Whatever the counters say (they are shared memory, scribbled or
// not), the fill is within 0..slots and every rate is finite and not
// negative, or absent.
func watchRowOf(p, c ringInfo, seen bool, dt time.Duration) watchRow {
	row := watchRow{ringInfo: c, Fill: fillOf(c.Head, c.Tail, c.Slots), Interval: dt.Seconds()}
	if !seen || p.State != "ok" || c.State != "ok" || dt <= 0 {
		return row
	}
	secs := dt.Seconds()
	pc, cc := p.lsCounters, c.lsCounters
	row.ItemsPerS = rate(pc.ItemsReleased, cc.ItemsReleased, secs, 1)
	row.MBPerS = rate(pc.BytesReleased, cc.BytesReleased, secs, 1e6)
	row.CommittedPerS = rate(pc.ItemsCommitted, cc.ItemsCommitted, secs, 1)
	row.ProducerSleepsPerS = rate(pc.ProducerSleeps, cc.ProducerSleeps, secs, 1)
	row.ConsumerSleepsPerS = rate(pc.ConsumerSleeps, cc.ConsumerSleeps, secs, 1)
	row.ProducerWakesPerS = rate(pc.ProducerWakes, cc.ProducerWakes, secs, 1)
	row.ConsumerWakesPerS = rate(pc.ConsumerWakes, cc.ConsumerWakes, secs, 1)
	return row
}

// fillOf is head-tail, clamped to 0..slots: two words read a moment apart
// on a live ring (or scribbled) can say anything.
func fillOf(head, tail uint64, slots int) uint64 {
	if head < tail || slots <= 0 {
		return 0
	}
	return min(head-tail, uint64(slots))
}

// rate is (cur-prev)/unit per second over secs, or nil when the counter
// went back or the time is not positive.
func rate(prev, cur uint64, secs, unit float64) *float64 {
	if cur < prev || !(secs > 0) {
		return nil
	}
	v := float64(cur-prev) / unit / secs
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// formatPerSec shows a rate in a few characters: "-" when unknown, then
// 0.0 to 99.9, whole numbers to 9999, and k, M, G multiples.
func formatPerSec(r *float64) string {
	if r == nil {
		return "-"
	}
	v := *r
	switch {
	case v >= 1e12:
		return strconv.FormatFloat(v, 'e', 2, 64)
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 2, 64) + "G"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// writeFrame writes one frame of the table in one write: on a terminal
// after clearing it, otherwise followed by an empty line.
func writeFrame(w io.Writer, rows []watchRow, every time.Duration, now time.Time, tty bool) error {
	var b bytes.Buffer
	if tty {
		b.WriteString(clearScreen)
	}
	noun := "rings"
	if len(rows) == 1 {
		noun = "ring"
	}
	fmt.Fprintf(&b, "shmpc ls -watch %v   %s   %d %s   (rates per second over the last interval; Ctrl-C stops)\n",
		every, now.Format("15:04:05"), len(rows), noun)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tITEMS/S\tMB/S\tFILL\tP SLEEPS/S\tC SLEEPS/S\tPRODUCER\tCONSUMER\tSTATE")
	for _, r := range rows {
		fill := "-"
		if r.State == "ok" {
			fill = fmt.Sprintf("%d/%d", r.Fill, r.Slots)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, formatPerSec(r.ItemsPerS), formatPerSec(r.MBPerS), fill,
			formatPerSec(r.ProducerSleepsPerS), formatPerSec(r.ConsumerSleepsPerS),
			owner(r.ProducerPID, r.ProducerAlive), owner(r.ConsumerPID, r.ConsumerAlive), r.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !tty {
		b.WriteString("\n")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeJSONRows writes one JSON object per ring, one per line.
func writeJSONRows(w io.Writer, rows []watchRow) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
