package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// --- transport -----------------------------------------------------------

// transportRow is one geometry of the transport section. Shmpc is
// `shmpc run -json`'s gib_per_s (the consumer's window, from the first
// Reserve to the last release); ShmpcWall and ShmpcWallGiBPerS are the
// same runs' whole job (wall_seconds: from run's start, before it starts
// its children, until both are reaped) and the rate it gives, the window
// to set beside a baseline that times its processes from outside.
type transportRow struct {
	Slots            int     `json:"slots"`
	SlotSize         int     `json:"slot_size"`
	Bytes            uint64  `json:"bytes"`
	Pages            string  `json:"pages"`
	Shmpc            stat    `json:"shmpc_gib_per_s"`
	UnixSocket       stat    `json:"unix_socket_gib_per_s"`
	Pipe             stat    `json:"pipe_gib_per_s"`
	VsSocket         float64 `json:"shmpc_vs_unix_socket"`
	VsPipe           float64 `json:"shmpc_vs_pipe"`
	OfMemcpy         float64 `json:"shmpc_of_memcpy,omitempty"`
	ShmpcWall        stat    `json:"shmpc_wall_seconds"`
	ShmpcWallGiBPerS stat    `json:"shmpc_wall_gib_per_s"`
}

func benchTransport(ctx context.Context, c benchConfig, rep *benchReport) error {
	total := uint64(4 << 30)
	if c.quick {
		total = 64 << 20
	}
	for _, g := range []struct{ slots, size int }{{8, 8 << 20}, {8, 64 << 10}} {
		count := total / uint64(g.size)
		row := transportRow{Slots: g.slots, SlotSize: g.size, Bytes: count * uint64(g.size)}
		var s, u, p, ws, wr []float64
		for r := 0; r < c.reps; r++ {
			run, err := c.shmpcRun(ctx, g.slots, g.size, count, 0)
			if err != nil {
				return err
			}
			row.Pages = run.Pages
			s = append(s, run.GiBPerSec)
			ws = append(ws, run.WallSeconds)
			wr = append(wr, gibPerSec(run.Bytes, run.WallSeconds))
			for _, kind := range []string{"unix", "pipe"} {
				res, err := c.streamPair(ctx, kind, g.size, count, 0, false)
				if err != nil {
					return err
				}
				if kind == "unix" {
					u = append(u, res.gibPerSec())
				} else {
					p = append(p, res.gibPerSec())
				}
			}
			c.log("transport %dx%s rep %d: shmpc %.2f, unix socket %.2f, pipe %.2f GiB/s; shmpc whole job %.3f s, %.2f GiB/s",
				g.slots, formatSize(int64(g.size)), r+1, s[r], u[r], p[r], ws[r], wr[r])
		}
		row.Shmpc, row.UnixSocket, row.Pipe = summarize(s), summarize(u), summarize(p)
		row.ShmpcWall, row.ShmpcWallGiBPerS = summarize(ws), summarize(wr)
		row.VsSocket, row.VsPipe = ratio(row.Shmpc.Median, row.UnixSocket.Median), ratio(row.Shmpc.Median, row.Pipe.Median)
		for _, l := range rep.Limits {
			if l.What == "memcpy" {
				row.OfMemcpy = ratio(row.Shmpc.Median, l.GiBPerS.Median)
			}
		}
		rep.Transport = append(rep.Transport, row)
	}
	return nil
}

// shmpcRun runs `shmpc run -json` with a geometry and returns its summary.
func (c benchConfig) shmpcRun(ctx context.Context, slots, size int, count uint64, workers int) (runSummary, error) {
	args := []string{"run", "-json", "-slots", strconv.Itoa(slots), "-slot-size", strconv.Itoa(size),
		"-count", strconv.FormatUint(count, 10), "-hugepages", c.huge.String()}
	if workers > 0 {
		args = append(args, "-workers", strconv.Itoa(workers))
	}
	out, err := c.runChild(ctx, args, nil)
	var sum runSummary
	if err != nil {
		return sum, err
	}
	if !lastJSON(out, &sum) || sum.Items != count || sum.IntegrityErrors != 0 || sum.WallSeconds <= 0 {
		return sum, fmt.Errorf("shmpc %s: unexpected summary %q", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	return sum, nil
}

// runChild runs this executable with args to completion and returns its
// stdout. A cancelled ctx stops it with SIGTERM (a graceful end), then
// kills it after 30 s.
func (c benchConfig) runChild(ctx context.Context, args []string, extra []*os.File) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := c.command(cctx, args, extra)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("shmpc %s: %v: %s", strings.Join(args, " "), err, lastLine(errb.String()))
	}
	return out.Bytes(), nil
}

func (c benchConfig) command(ctx context.Context, args []string, extra []*os.File) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.exe, args...)
	cmd.ExtraFiles = extra
	// A bench that dies (even of SIGKILL) sends its children SIGTERM: a
	// graceful stop, after which their rings are removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
