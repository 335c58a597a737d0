package main

import (
	"context"
	"time"
)

// --- small items ---------------------------------------------------------

type rateRow struct {
	Item          int     `json:"item"`
	Count         uint64  `json:"count"`
	Pages         string  `json:"pages"`
	ShmpcBlock    stat    `json:"shmpc_block_items_per_s"`
	ShmpcSpin     stat    `json:"shmpc_spin_items_per_s"`
	UnixSocket    stat    `json:"unix_socket_items_per_s"`
	Pipe          stat    `json:"pipe_items_per_s"`
	BlockVsSocket float64 `json:"block_vs_unix_socket"`
	BlockVsPipe   float64 `json:"block_vs_pipe"`
	SpinVsSocket  float64 `json:"spin_vs_unix_socket"`
	SpinVsPipe    float64 `json:"spin_vs_pipe"`
}

type latencyRow struct {
	Item       int     `json:"item"`
	Count      uint64  `json:"count"`
	PaceMicros int64   `json:"pace_us"`
	ShmpcBlock latStat `json:"shmpc_block"`
	ShmpcSpin  latStat `json:"shmpc_spin"`
	UnixSocket latStat `json:"unix_socket"`
	Pipe       latStat `json:"pipe"`
}

// latStat: medians over the repetitions of each run's percentiles, in µs.
type latStat struct {
	P50 stat `json:"p50_us"`
	P99 stat `json:"p99_us"`
	Max stat `json:"max_us"`
}

// smallVariants are the four ways small items travel.
var smallVariants = []string{"shmpc block", "shmpc spin", "unix socket", "pipe"}

func (c benchConfig) smallRun(ctx context.Context, variant string, item int, count uint64, pace time.Duration, stamp bool) (pairResult, error) {
	switch variant {
	case "shmpc block":
		return c.ringPair(ctx, 64, 4096, item, count, 0, pace, stamp, 1)
	case "shmpc spin":
		return c.ringPair(ctx, 64, 4096, item, count, c.spin, pace, stamp, 1)
	case "unix socket":
		return c.streamPair(ctx, "unix", item, count, pace, stamp)
	default:
		return c.streamPair(ctx, "pipe", item, count, pace, stamp)
	}
}

// benchSmall: items of 64 B, 512 B and 4 KiB in a ring of 64 slots of
// 4 KiB, against a socket and a pipe carrying the same items: as fast as
// possible (items per second), then one item every 100 µs with the send
// time in the item (one-way latency). The consumer has one worker.
func benchSmall(ctx context.Context, c benchConfig, rep *benchReport) error {
	count, latCount := uint64(200_000), uint64(10_000)
	if c.quick {
		count, latCount = 5_000, 500
	}
	const pace = 100 * time.Microsecond
	for _, item := range []int{64, 512, 4096} {
		row := rateRow{Item: item, Count: count}
		samples := make([][]float64, len(smallVariants))
		for r := 0; r < c.reps; r++ {
			for v, variant := range smallVariants {
				res, err := c.smallRun(ctx, variant, item, count, 0, false)
				if err != nil {
					return err
				}
				if res.send.Pages != "" {
					row.Pages = res.send.Pages
				}
				samples[v] = append(samples[v], res.itemsPerSec())
			}
			c.log("small %d B rep %d: items/s %.0f block, %.0f spin, %.0f socket, %.0f pipe", item, r+1,
				samples[0][r], samples[1][r], samples[2][r], samples[3][r])
		}
		row.ShmpcBlock, row.ShmpcSpin, row.UnixSocket, row.Pipe = summarize(samples[0]), summarize(samples[1]), summarize(samples[2]), summarize(samples[3])
		row.BlockVsSocket, row.BlockVsPipe = ratio(row.ShmpcBlock.Median, row.UnixSocket.Median), ratio(row.ShmpcBlock.Median, row.Pipe.Median)
		row.SpinVsSocket, row.SpinVsPipe = ratio(row.ShmpcSpin.Median, row.UnixSocket.Median), ratio(row.ShmpcSpin.Median, row.Pipe.Median)
		rep.Rate = append(rep.Rate, row)
	}
	for _, item := range []int{64, 4096} {
		row := latencyRow{Item: item, Count: latCount, PaceMicros: pace.Microseconds()}
		p50, p99, pmax := make([][]float64, 4), make([][]float64, 4), make([][]float64, 4)
		for r := 0; r < c.reps; r++ {
			for v, variant := range smallVariants {
				res, err := c.smallRun(ctx, variant, item, latCount, pace, true)
				if err != nil {
					return err
				}
				p50[v] = append(p50[v], res.recv.LatP50)
				p99[v] = append(p99[v], res.recv.LatP99)
				pmax[v] = append(pmax[v], res.recv.LatMax)
			}
			c.log("latency %d B rep %d: p50/p99 µs %.1f/%.1f block, %.1f/%.1f spin, %.1f/%.1f socket, %.1f/%.1f pipe", item, r+1,
				p50[0][r], p99[0][r], p50[1][r], p99[1][r], p50[2][r], p99[2][r], p50[3][r], p99[3][r])
		}
		ls := make([]latStat, 4)
		for v := range ls {
			ls[v] = latStat{P50: summarize(p50[v]), P99: summarize(p99[v]), Max: summarize(pmax[v])}
		}
		row.ShmpcBlock, row.ShmpcSpin, row.UnixSocket, row.Pipe = ls[0], ls[1], ls[2], ls[3]
		rep.Latency = append(rep.Latency, row)
	}
	return nil
}
