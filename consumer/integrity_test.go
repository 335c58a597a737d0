package consumer_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// itemBytes is item seq of TestDamagedItemNeverDelivered: a marker unique
// to the item (so the test finds it in the segment without knowing the
// layout) followed by a pattern.
func itemBytes(seq int, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seq)
	}
	copy(b, fmt.Sprintf("<item %06d>", seq))
	return b
}

// TestDamagedItemNeverDelivered: an item that was published and is then
// damaged in the segment, before the consumer reads it, is never handed
// to the handler, in zero-copy and copy mode, with one worker and with
// several: Run stops with ErrIntegrity naming that item, and every item
// the handler got is intact. (The check must not depend on the copy mode:
// a check that ran only on copies passed the rest of the suite.)
func TestDamagedItemNeverDelivered(t *testing.T) {
	const slots, size, damaged = 8, 4096, 3
	for _, copyMode := range []bool{false, true} {
		for _, tc := range []struct {
			workers int
			mode    string // run, ordered (Run with Options.Ordered), next (the pull loop)
		}{{1, "run"}, {4, "run"}, {4, "ordered"}, {1, "next"}, {4, "next"}} {
			workers := tc.workers
			t.Run(fmt.Sprintf("copy=%v/workers=%d/%s", copyMode, workers, tc.mode), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				name := uniqueName(t)
				p, err := producer.Open(ctx, name, producer.Options{Slots: slots, SlotSize: size, HugePages: shm.Off, Lock: shm.Off})
				require.NoError(t, err)
				for i := range slots {
					require.NoError(t, p.Send(ctx, itemBytes(i, size-i)))
				}

				// Damage the published item in the segment, as another
				// process that can write it would.
				n, err := ringobj.For(name)
				require.NoError(t, err)
				seg, err := shm.Attach(n.Key, false, shm.Options{Lock: shm.Off})
				require.NoError(t, err)
				mem := seg.Bytes()
				at := bytes.Index(mem, []byte(fmt.Sprintf("<item %06d>", damaged)))
				require.GreaterOrEqual(t, at, 0, "item %d not found in the segment", damaged)
				mem[at+100] ^= 0x40
				require.NoError(t, seg.Detach())
				// The stream ends after these items, so a consumer that
				// wrongly let the damage through finishes at once instead
				// of waiting for more.
				ended := make(chan error, 1)
				go func() { ended <- p.End(ctx) }()
				defer func() {
					require.NoError(t, p.Close())
					select {
					case <-ended:
					case <-time.After(10 * time.Second):
						t.Error("End did not return within 10s of Close")
					}
				}()

				c, err := consumer.Open(ctx, name, consumer.Options{Workers: workers, Copy: copyMode, Ordered: tc.mode == "ordered", Wait: 5 * time.Second})
				require.NoError(t, err)
				defer c.Close()
				var mu sync.Mutex
				var got []uint64
				handle := func(seq uint64, data []byte) error {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, seq)
					if !bytes.Equal(data, itemBytes(int(seq), size-int(seq))) {
						t.Errorf("item %d was delivered with other bytes than sent", seq)
					}
					return nil
				}
				if tc.mode == "next" {
					for {
						var it consumer.Item
						if it, err = c.Next(ctx); err != nil {
							break
						}
						require.NoError(t, handle(it.Seq, it.Data))
						require.NoError(t, it.Release())
					}
					_, again := c.Next(ctx)
					require.ErrorIs(t, again, consumer.ErrIntegrity, "Next after the integrity error")
				} else {
					err = c.Run(ctx, handle)
				}
				require.ErrorIs(t, err, consumer.ErrIntegrity)
				require.Contains(t, err.Error(), fmt.Sprintf("item %d ", damaged))
				t.Logf("Run: %v; delivered %v", err, got)
				require.NotContains(t, got, uint64(damaged), "the damaged item reached the handler")
				if workers == 1 || tc.mode != "run" {
					slices.Sort(got)
					require.Equal(t, []uint64{0, 1, 2}, got, "one worker, or in order, stops exactly at the damaged item")
				}
				require.Equal(t, uint64(1), c.Stats().IntegrityErrors)
			})
		}
	}
}
