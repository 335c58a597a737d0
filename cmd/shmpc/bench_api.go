package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shmpc/shmpc/internal/payload"
)

// --- api -----------------------------------------------------------------

// The api section: what a user's own program gets. A producer process
// moves one pre-filled private buffer through the ring again and again,
// by each path the producer package offers, to a consumer process that
// hands the handler a view of the slot or a verified private copy; next
// to it, one core copying the same source into eight targets in turn (the
// memory traffic of the producer's copy), and the payload path of
// `shmpc run` (generated in the slot, no copy). A second part times the
// ring as a pipe: `produce -stdin < FILE` into `consume -stdout >
// /dev/null`, against `cat FILE > /dev/null` of the same cached file.

// apiPaths are the producer's ways to move a user's buffer, as `bench
// peer ring-send -mode` names them.
var apiPaths = []string{
	"payload",     // generated in the slot by the fused kernel: shmpc run's path, no copy
	"send",        // Send(buf): copy and CRC of the source
	"copy-commit", // Reserve, copy(slot, buf), Commit: the CRC reads the slot back
	"pieces",      // Reserve, 64 KiB pieces each copied and checksummed by ring.CopyUpdateCRC, CommitCRC
}

// apiRow is one item size of the api section.
type apiRow struct {
	Item   int             `json:"item"`
	Slots  int             `json:"slots"`
	Bytes  uint64          `json:"bytes"`
	Memcpy stat            `json:"memcpy_gib_per_s"` // one source into eight targets in turn
	Paths  map[string]stat `json:"gib_per_s"`        // "PATH/view" and "PATH/copy"
}

// pipeRow is the pipe part of the api section.
type pipeRow struct {
	Bytes uint64  `json:"bytes"`
	Cat   stat    `json:"cat_gib_per_s"`  // cat FILE > /dev/null
	Pipe  stat    `json:"pipe_gib_per_s"` // produce -stdin < FILE | consume -stdout > /dev/null (whole job)
	Ratio float64 `json:"pipe_of_cat"`
}

func benchAPI(ctx context.Context, c benchConfig, rep *benchReport) error {
	total := uint64(2 << 30)
	if c.quick {
		total = 64 << 20
	}
	for _, item := range []int{64 << 10, 1 << 20, 8 << 20} {
		count := total / uint64(item)
		row := apiRow{Item: item, Slots: 8, Bytes: count * uint64(item), Paths: map[string]stat{}}
		samples := map[string][]float64{}
		var mc []float64
		for r := 0; r < c.reps; r++ {
			mc = append(mc, memcpyOneToEight(item, row.Bytes))
			for _, path := range apiPaths {
				for _, cons := range []string{"view", "copy"} {
					if err := ctx.Err(); err != nil {
						return err
					}
					res, err := c.apiPair(ctx, item, count, path, cons == "copy")
					if err != nil {
						return err
					}
					k := path + "/" + cons
					samples[k] = append(samples[k], res.gibPerSec())
					c.log("api %s %s rep %d: %.2f GiB/s (memcpy %.2f)", formatSize(int64(item)), k, r+1, res.gibPerSec(), mc[r])
				}
			}
		}
		row.Memcpy = summarize(mc)
		for k, xs := range samples {
			row.Paths[k] = summarize(xs)
		}
		rep.API = append(rep.API, row)
	}
	p, err := c.benchPipe(ctx)
	if err != nil {
		return err
	}
	rep.Pipe = p
	return nil
}

// memcpyOneToEight copies one item-sized source into eight targets in
// turn until total bytes were copied, and returns the rate in GiB/s.
func memcpyOneToEight(item int, total uint64) float64 {
	src := make([]byte, item)
	payload.Fill(src, 0)
	dst := make([][]byte, 8)
	for i := range dst {
		dst[i] = make([]byte, item)
		copy(dst[i], src) // fault every page in
	}
	n := total / uint64(item)
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		copy(dst[i%8], src)
	}
	return gibPerSec(n*uint64(item), time.Since(start).Seconds())
}

// apiPair moves count items of item bytes through 8 slots of item bytes
// by the producer's path, to a consumer with one worker that gets views
// (or verified private copies).
func (c benchConfig) apiPair(ctx context.Context, item int, count uint64, path string, copyMode bool) (pairResult, error) {
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	name := c.names + "-" + hex.EncodeToString(rnd[:])
	common := []string{"-name", name, "-count", strconv.FormatUint(count, 10), "-item", strconv.Itoa(item)}
	send := append([]string{"ring-send", "-slots", "8", "-slot-size", strconv.Itoa(item),
		"-hugepages", c.huge.String(), "-mode", path}, common...)
	recv := append([]string{"ring-recv", "-workers", "1", "-copy=" + strconv.FormatBool(copyMode)}, common...)
	return c.runPair(ctx, recv, send, nil, nil)
}

// benchPipe times the ring as a pipe against cat, alternating, over one
// cached file of the payload.
func (c benchConfig) benchPipe(ctx context.Context) (pipeRow, error) {
	size := int64(2 << 30)
	if c.quick {
		size = 64 << 20
	}
	dir, err := os.MkdirTemp("", "shmpc-bench-pipe-")
	if err != nil {
		return pipeRow{}, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "data")
	if err := writePayloadFile(file, size); err != nil {
		return pipeRow{}, err
	}
	row := pipeRow{Bytes: uint64(size)}
	var cat, pipe []float64
	for r := 0; r < c.reps; r++ {
		if err := ctx.Err(); err != nil {
			return row, err
		}
		start := time.Now()
		if err := shellRun(ctx, "cat "+strconv.Quote(file)+" > /dev/null"); err != nil {
			return row, err
		}
		cat = append(cat, gibPerSec(uint64(size), time.Since(start).Seconds()))
		var rnd [3]byte
		_, _ = rand.Read(rnd[:])
		name := c.names + "-pipe-" + hex.EncodeToString(rnd[:])
		exe := strconv.Quote(c.exe)
		script := fmt.Sprintf("%s consume -name %s -wait 30s -stdout > /dev/null & %s produce -name %s -hugepages %s -stdin < %s; p=$?; wait $!; c=$?; exit $((p|c))",
			exe, name, exe, name, c.huge.String(), strconv.Quote(file))
		start = time.Now()
		if err := shellRun(ctx, script); err != nil {
			return row, fmt.Errorf("pipe: %w", err)
		}
		pipe = append(pipe, gibPerSec(uint64(size), time.Since(start).Seconds()))
		c.log("pipe rep %d: cat %.2f GiB/s, produce -stdin | consume -stdout %.2f GiB/s", r+1, cat[r], pipe[r])
	}
	row.Cat, row.Pipe = summarize(cat), summarize(pipe)
	row.Ratio = ratio(row.Pipe.Median, row.Cat.Median)
	return row, nil
}

// writePayloadFile writes size bytes of the payload to path and reads it
// once, so that it is in the page cache.
func writePayloadFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 8<<20)
	for off, seq := int64(0), uint64(0); off < size; off, seq = off+int64(len(buf)), seq+1 {
		n := min(int64(len(buf)), size-off)
		payload.FillCached(buf[:n], seq)
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return shellRun(context.Background(), "cat "+strconv.Quote(path)+" > /dev/null")
}

// shellRun runs a sh -c script, bounded by ctx and five minutes.
func shellRun(ctx context.Context, script string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", script)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, lastLine(string(out)))
	}
	return nil
}
