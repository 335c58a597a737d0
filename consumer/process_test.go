package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// The test binary doubles as a producer process: with producerEnv set to
// "NAME SLOTS SLOTSIZE COUNT" it produces COUNT payload items into ring
// NAME (resuming it if its producer died) and exits with 0, or 3 when its
// consumer was lost; a fifth field "die=K" makes it kill itself (SIGKILL,
// a crash) once item K-1 is committed.
const producerEnv = "SHMPC_TEST_PRODUCER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(producerEnv); spec != "" {
		os.Exit(runProducer(spec))
	}
	goleak.VerifyTestMain(m)
}

func runProducer(spec string) int {
	f := strings.Fields(spec)
	slots, _ := strconv.Atoi(f[1])
	slotSize, _ := strconv.Atoi(f[2])
	count, _ := strconv.ParseUint(f[3], 10, 64)
	die := uint64(1<<63 - 1)
	if len(f) > 4 {
		die, _ = strconv.ParseUint(strings.TrimPrefix(f[4], "die="), 10, 64)
	}
	ctx := context.Background()
	p, err := producer.Open(ctx, f[0], producer.Options{Slots: slots, SlotSize: slotSize, HugePages: shm.Off, Wait: 30 * time.Second,
		StreamItems: count, StreamBytes: count * uint64(slotSize)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer p.Close()
	for seq := p.Next(); seq < count; seq++ {
		s, err := p.Reserve(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if err := p.CommitCRC(slotSize, payload.Fill(s.Buf[:slotSize], seq)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if seq+1 == die {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	if err := p.End(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if err := p.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func uniqueName(t *testing.T) string { return testutil.RingName(t, "c") }

// startProducer starts a producer process for ring name.
func startProducer(t *testing.T, name string, slots, slotSize int, count uint64) (wait func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %d", producerEnv, name, slots, slotSize, count), "GORACE=atexit_sleep_ms=0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done; cancel() })
	return func() (int, string) {
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("producer process did not finish within a minute: %s", stderr.String())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		return 0, stderr.String()
	}
}

// TestRealProducer runs a producer process against a consumer in this
// process, in both start orders, over several geometries, with one and
// eight workers whose handlers take random time (so they finish out of
// order): every item is delivered exactly once with the payload pattern,
// and nothing of the ring remains afterwards.
func TestRealProducer(t *testing.T) {
	geometries := []struct {
		slots, slotSize int
		count           uint64
	}{{1, 4096, 50}, {8, 8 << 20, 24}, {64, 4096, 2000}}
	for _, g := range geometries {
		for _, workers := range []int{1, 8} {
			for _, consumerFirst := range []bool{true, false} {
				t.Run(fmt.Sprintf("%dx%d/k%d/consumerFirst=%v", g.slots, g.slotSize, workers, consumerFirst), func(t *testing.T) {
					name := uniqueName(t)
					ctx := context.Background()
					var wait func() (int, string)
					if !consumerFirst {
						wait = startProducer(t, name, g.slots, g.slotSize, g.count)
					}
					openDone := make(chan struct{})
					var c *consumer.Consumer
					var openErr error
					go func() {
						c, openErr = consumer.Open(ctx, name, consumer.Options{Workers: workers, Wait: 30 * time.Second})
						close(openDone)
					}()
					if consumerFirst {
						time.Sleep(100 * time.Millisecond)
						wait = startProducer(t, name, g.slots, g.slotSize, g.count)
					}
					<-openDone
					require.NoError(t, openErr)
					defer c.Close()

					var mu sync.Mutex
					seen := make(map[uint64]int)
					var order []uint64
					var bad []string
					err := c.Run(ctx, func(seq uint64, data []byte) error {
						if workers > 1 {
							time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
						}
						err := payload.Check(data, seq)
						mu.Lock()
						defer mu.Unlock()
						if err != nil || len(data) != g.slotSize {
							bad = append(bad, fmt.Sprintf("item %d (%d bytes): %v", seq, len(data), err))
						}
						seen[seq]++
						order = append(order, seq)
						return nil
					})
					require.NoError(t, err)
					code, stderr := wait()
					require.Equal(t, 0, code, "producer: %s", stderr)
					require.Empty(t, bad)
					for seq := uint64(0); seq < g.count; seq++ {
						require.Equal(t, 1, seen[seq], "item %d delivered %d times", seq, seen[seq])
					}
					require.Len(t, seen, int(g.count))
					require.Equal(t, g.count, c.Stats().Items)
					inversions := 0
					for i := 1; i < len(order); i++ {
						if order[i] < order[i-1] {
							inversions++
						}
					}
					if workers == 1 {
						require.Zero(t, inversions, "one worker delivers in order")
					} else if g.slots > 1 && g.count >= 50 {
						require.NotZero(t, inversions, "eight workers with random delays should finish out of order")
					}
					require.NoError(t, c.Close())
				})
			}
		}
	}
}
