//go:build !race

// The source is written by another goroutine during the copy, on purpose:
// the race detector would (rightly) report that, so this file is left out
// of -race builds.

package crc32c

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestCopyUpdateDstUnderWriter: a source another goroutine keeps writing
// during the copy (a slot a hostile process scribbles on) still gives
// CopyUpdateDst the checksum of exactly what landed in dst, with every
// kernel, at lengths with a head and tail around the fused blocks, above
// and below the non-temporal threshold. Reading src a second time for the
// checksum (as CopyUpdate's pieces do) fails this.
func TestCopyUpdateDstUnderWriter(t *testing.T) {
	forEachImpl(t, func(t *testing.T, i Impl) {
		for _, n := range []int{1000, 64<<10 + 77, 1<<20 + 37, 3<<20 + 5} {
			src := randomBytes(uint64(n), n+64)[13 : 13+n]
			dst := make([]byte, n+64)[7 : 7+n]
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				x := uint64(n)
				for !stop.Load() {
					for k := 0; k < 4096 && !stop.Load(); k++ {
						x ^= x << 13
						x ^= x >> 7
						x ^= x << 17
						src[x%uint64(n)] ^= byte(x >> 32)
					}
				}
			}()
			bad := 0
			for range 60 {
				got := i.CopyUpdateDst(0, dst, src)
				if want := i.Update(0, dst); got != want {
					bad++
				}
			}
			stop.Store(true)
			wg.Wait()
			if bad > 0 {
				t.Errorf("%s, %d bytes: %d of 60 copies returned a checksum other than that of dst", i, n, bad)
			}
		}
	})
}
