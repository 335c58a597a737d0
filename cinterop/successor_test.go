package cinterop

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shmpc/shmpc/internal/testutil"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// TestCConsumerProducerClosedWithoutEndThenSuccessor is the C consumer's
// side of consumer.TestProducerClosedWithoutEndThenSuccessor: a Go producer
// that closes without ending its stream removes the ring's segment while a
// shmpc-c consumer is still attached, and a new Go producer of the NAME then
// makes a new segment that consumer never sees, while it holds the same
// producer role the consumer watches. The consumer must not take that
// producer for its own and wait for ever: it reports the loss (exit 3).
func TestCConsumerProducerClosedWithoutEndThenSuccessor(t *testing.T) {
	c, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := testutil.RingName(t, "ci")
	o := producer.Options{Slots: 2, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off, Wait: 30 * time.Second}
	p1, err := producer.Open(ctx, name, o)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = p1.Close()
		}
	})
	if err := p1.Send(ctx, []byte("from the first producer")); err != nil {
		t.Fatal(err)
	}
	cons := start(t, c, nil, nil, "consume", "-name", name, "-wait", "30s", "-peer-timeout", "30s")
	waitFor(t, func() bool {
		_, tl, ok := ringState(name)
		return ok && tl >= 1
	}, "the C consumer to release the first item")
	closed = true
	if err := p1.Close(); err != nil { // no End: the segment goes, the consumer stays
		t.Fatal(err)
	}
	p2, err := producer.Open(ctx, name, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p2.Close() })
	if got := cons.wait(t, 10*time.Second); got != 3 {
		t.Fatalf("the C consumer exited %d, want 3 (peer lost); stderr:\n%s", got, cons.stderr)
	}
	if s := cons.stderr.String(); !strings.Contains(s, "removed the ring") {
		t.Errorf("the C consumer's error does not say its producer removed the ring: %q", s)
	}
}
