package consumer_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// Perf tests: a producer and a consumer in one process, on a ring of
// normal pages, driven like the CLI drives them (payload.Fill straight
// into the slot, CommitCRC; a consumer that verifies every item).

func perfName(tb testing.TB) string { return testutil.RingName(tb, "perf") }

// pipeline moves count items of size bytes through a ring of slots slots.
// atItem, if not nil, is called by the handler with the number of items
// delivered so far (1, 2, ...). It returns the consumer's Stats.
func pipeline(tb testing.TB, slots, size int, count uint64, popt producer.Options, copt consumer.Options, atItem func(n uint64)) consumer.Stats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := perfName(tb)
	popt.Slots, popt.SlotSize, popt.HugePages, popt.StreamItems = slots, size, shm.Off, count
	p, err := producer.Open(ctx, name, popt)
	require.NoError(tb, err)
	defer p.Close()
	copt.Wait = 30 * time.Second
	c, err := consumer.Open(ctx, name, copt)
	require.NoError(tb, err)
	defer c.Close()

	sent := make(chan error, 1)
	go func() {
		sent <- func() error {
			for seq := uint64(0); seq < count; seq++ {
				s, err := p.Reserve(ctx)
				if err != nil {
					return err
				}
				if err := p.CommitCRC(size, payload.Fill(s.Buf[:size], seq)); err != nil {
					return err
				}
			}
			if err := p.End(ctx); err != nil {
				return err
			}
			return p.Close() // removes the ring, which the consumer waits for
		}()
	}()
	var n atomic.Uint64
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		k := n.Add(1)
		if atItem != nil {
			atItem(k)
		}
		return nil
	})
	require.NoError(tb, err)
	require.NoError(tb, <-sent)
	st := c.Stats()
	require.Equal(tb, count, st.Items)
	require.Zero(tb, st.IntegrityErrors)
	require.NoError(tb, c.Close())
	return st
}

// TestPerfAllocationsPerItem: once running, moving an item allocates
// nothing on either side, also when a side sleeps on its semaphore (an
// armed sleep is a bounded futex wait with no context, timer or goroutine
// of its own). Over 20000 items in the middle of a stream, with the
// blocking wait (a sleep or two per item on each side) and with a spin
// wait, the heap's allocation count stays under 0.02 per item: what is
// left is the runtime's own, e.g. a rare timer or the peer monitor.
func TestPerfAllocationsPerItem(t *testing.T) {
	if perfRace {
		t.Skip("the race detector allocates on its own: allocation counts mean nothing under -race")
	}
	for _, tc := range []struct {
		name  string
		spin  time.Duration
		bound float64 // allocations per item
	}{{"blocking", 0, 0.02}, {"spin", 200 * time.Microsecond, 0.02}} {
		t.Run(tc.name, func(t *testing.T) {
			const warm, window = 2000, 20000
			var before, after runtime.MemStats
			pipeline(t, 8, 4096, warm+window+2000,
				producer.Options{Spin: tc.spin}, consumer.Options{Workers: 2, Spin: tc.spin},
				func(n uint64) {
					switch n {
					case warm:
						runtime.ReadMemStats(&before)
					case warm + window:
						runtime.ReadMemStats(&after)
					}
				})
			perItem := float64(after.Mallocs-before.Mallocs) / window
			t.Logf("%.4f allocations per item over %d items", perItem, window)
			require.Less(t, perItem, tc.bound, "allocations per item in the steady state")
		})
	}
}

// BenchmarkPerfPipeline: items per second and bytes per second through a
// ring in one process; with -benchmem, allocs/op is per item.
func BenchmarkPerfPipeline(b *testing.B) {
	for _, g := range []struct {
		slots, size int
		spin        time.Duration
	}{{8, 4096, 0}, {8, 4096, 50 * time.Microsecond}, {8, 64 << 10, 0}, {8, 1 << 20, 0}} {
		b.Run(fmt.Sprintf("%dx%d/spin=%v", g.slots, g.size, g.spin), func(b *testing.B) {
			b.SetBytes(int64(g.size))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			pipeline(b, g.slots, g.size, uint64(b.N), producer.Options{Spin: g.spin}, consumer.Options{Spin: g.spin}, nil)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
		})
	}
}
