package main

import (
	"context"
)

// --- scaling -------------------------------------------------------------

type scalingRow struct {
	Vary     string `json:"vary"` // slot_size, slots or workers
	Slots    int    `json:"slots"`
	SlotSize int    `json:"slot_size"`
	Workers  int    `json:"workers"`
	Bytes    uint64 `json:"bytes"`
	Pages    string `json:"pages"`
	GiBPerS  stat   `json:"gib_per_s"`
}

// benchScaling runs `shmpc run` over slot sizes (8 slots), slot counts
// (1 MiB slots) and consumer workers (8 x 8 MiB), each moving 2 GiB
// (quick: 64 MiB); every repetition runs the whole list once.
func benchScaling(ctx context.Context, c benchConfig, rep *benchReport) error {
	total := uint64(2 << 30)
	if c.quick {
		total = 64 << 20
	}
	var rows []scalingRow
	for _, s := range []int{4 << 10, 64 << 10, 1 << 20, 8 << 20, 64 << 20} {
		if s > c.scalingMaxSlot() {
			continue
		}
		rows = append(rows, scalingRow{Vary: "slot_size", Slots: 8, SlotSize: s})
	}
	for _, n := range []int{1, 2, 4, 8, 16, 64} {
		rows = append(rows, scalingRow{Vary: "slots", Slots: n, SlotSize: 1 << 20})
	}
	for _, w := range []int{1, 2, 4, 8} {
		rows = append(rows, scalingRow{Vary: "workers", Slots: 8, SlotSize: 8 << 20, Workers: w})
	}
	samples := make([][]float64, len(rows))
	for r := 0; r < c.reps; r++ {
		for i := range rows {
			row := &rows[i]
			count := max(total/uint64(row.SlotSize), 1)
			row.Bytes = count * uint64(row.SlotSize)
			sum, err := c.shmpcRun(ctx, row.Slots, row.SlotSize, count, row.Workers)
			if err != nil {
				return err
			}
			row.Pages = sum.Pages
			samples[i] = append(samples[i], sum.GiBPerSec)
			c.log("scaling %s: %d x %s, workers %d: %.2f GiB/s", row.Vary, row.Slots, formatSize(int64(row.SlotSize)), row.Workers, sum.GiBPerSec)
		}
	}
	for i := range rows {
		rows[i].GiBPerS = summarize(samples[i])
	}
	rep.Scaling = rows
	return nil
}
