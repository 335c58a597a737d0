package consumer_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/internalhook"
	"github.com/shmpc/shmpc/internal/ringobj"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// TestProducerAttachingIsNotGone: a consumer on a ring whose producer died
// waits for a new one (Wait); a producer that attaches while the consumer
// judges whether one is there (between its look at the claim generation
// and its look at the lock) is that new producer, not one that came and
// left: the consumer delivers the stream instead of giving up with
// "producer is gone" (PeerTimeout 0). The hook starts the new producer in
// exactly that window.
func TestProducerAttachingIsNotGone(t *testing.T) {
	name := uniqueName(t)
	n, err := ringobj.For(name)
	require.NoError(t, err)
	const slots, size, count = 4, 4096, 20

	// A first producer fills the ring and is killed: an orphan ring.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	first.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d", producerEnv, name, slots, size, count), "GORACE=atexit_sleep_ms=0")
	require.NoError(t, first.Start())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if seg, err := shm.Attach(n.Key, true, shm.Options{Lock: shm.Off}); err == nil {
			r, err := ring.Open(seg.Bytes())
			full := err == nil && r.Head() == slots
			_ = seg.Detach()
			if full {
				break
			}
		}
		require.True(t, time.Now().Before(deadline), "the first producer did not fill the ring within 20s")
		time.Sleep(2 * time.Millisecond)
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()

	c, err := consumer.Open(context.Background(), name, consumer.Options{Workers: 1, Wait: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	gen0 := c.Ring().ProducerID().Gen
	var once sync.Once
	var waitSecond func() (int, string)
	internalhook.BetweenPeerLooks = func() {
		once.Do(func() {
			waitSecond = startProducer(t, name, slots, size, count)
			deadline := time.Now().Add(10 * time.Second)
			for c.Ring().ProducerID().Gen == gen0 {
				if time.Now().After(deadline) {
					t.Error("the second producer did not attach within 10s")
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { internalhook.BetweenPeerLooks = nil })
	var got []uint64
	err = c.Run(context.Background(), func(seq uint64, data []byte) error {
		got = append(got, seq)
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, waitSecond, "the hook ran")
	code, stderr := waitSecond()
	require.Equal(t, 0, code, stderr)
	require.Len(t, got, count)
}
