package main

import (
	"context"
	"hash/crc32"
	"time"

	"github.com/shmpc/shmpc/internal/payload"
)

// --- limits --------------------------------------------------------------

type limitRow struct {
	What    string `json:"what"`
	GiBPerS stat   `json:"gib_per_s"`
}

// benchLimits measures one core's memcpy, CRC32C and payload generation
// bandwidth over eight 8 MiB buffers in turn (64 MiB, twice the L3 cache
// of the machines we measured on: what a ring of 8 such slots sees).
func benchLimits(ctx context.Context, c benchConfig, rep *benchReport) error {
	const bufSize = 8 << 20
	src, dst := make([][]byte, 8), make([][]byte, 8)
	for i := range src {
		src[i], dst[i] = make([]byte, bufSize), make([]byte, bufSize)
		payload.Fill(src[i], uint64(i))
		payload.Fill(dst[i], uint64(i)) // fault every page in
	}
	dur := 300 * time.Millisecond
	if c.quick {
		dur = 30 * time.Millisecond
	}
	kernels := []struct {
		what string
		fn   func(i int)
	}{
		{"memcpy", func(i int) { copy(dst[i%8], src[i%8]) }},
		{"crc32c (payload.Checksum, the consumer's check)", func(i int) { payload.Checksum(src[i%8]) }},
		{"crc32c (hash/crc32)", func(i int) { crc32.Checksum(src[i%8], castagnoli) }},
		{"payload fill + crc32c (the producer's work)", func(i int) { payload.Fill(dst[i%8], uint64(i)) }},
	}
	samples := make([][]float64, len(kernels))
	for r := 0; r < c.reps; r++ {
		for k, kn := range kernels {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, start := 0, time.Now()
			for time.Since(start) < dur || n < 8 {
				kn.fn(n)
				n++
			}
			samples[k] = append(samples[k], gibPerSec(uint64(n)*bufSize, time.Since(start).Seconds()))
		}
	}
	for k, kn := range kernels {
		rep.Limits = append(rep.Limits, limitRow{What: kn.what, GiBPerS: summarize(samples[k])})
		c.log("limit %s: %.2f GiB/s", kn.what, rep.Limits[k].GiBPerS.Median)
	}
	return nil
}
