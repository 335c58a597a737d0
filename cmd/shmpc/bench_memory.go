package main

import (
	"context"
)

// --- memory --------------------------------------------------------------

type memoryRow struct {
	Bytes    uint64     `json:"bytes"`
	RingKiB  int64      `json:"ring_kib"`
	Pages    string     `json:"pages"`
	Producer peerResult `json:"producer"`
	Consumer peerResult `json:"consumer"`
}

// benchMemory moves 1 GiB and 64 GiB (quick: 64 MiB and 1 GiB) through a
// ring of 8 slots of 8 MiB and reports each side's memory at the end and
// its heap allocations per item in the steady state.
func benchMemory(ctx context.Context, c benchConfig, rep *benchReport) error {
	sizes := []uint64{1 << 30, 64 << 30}
	if c.quick {
		sizes = []uint64{64 << 20, 1 << 30}
	}
	const slotSize = 8 << 20
	for _, total := range sizes {
		res, err := c.ringPair(ctx, 8, slotSize, slotSize, total/slotSize, 0, 0, false, 1)
		if err != nil {
			return err
		}
		rep.Memory = append(rep.Memory, memoryRow{Bytes: total, RingKiB: 8 * slotSize >> 10, Pages: res.send.Pages,
			Producer: res.send, Consumer: res.recv})
		c.log("memory after %s: producer peak RSS %d KiB, consumer %d KiB", formatBytes(total), res.send.PeakRSS, res.recv.PeakRSS)
	}
	return nil
}
