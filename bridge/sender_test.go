package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/shm"
)

// TestSenderPublishesTheEndBeforeTheDrain: the end of the stream is in
// JetStream before the ring's producer learns that the ring is drained (and
// removes it), also when the stream ends after its last item was released.
// Publishing the end is held for 300 ms; had the drain been told first, the
// producer's End would return meanwhile and a Sender killed then would lose
// the end with the ring.
func TestSenderPublishesTheEndBeforeTheDrain(t *testing.T) {
	srv := startServer(t, "", 0)
	nc := connect(t, srv)
	name := ringName(t, "bre")
	subject := "shmpc.test." + name
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096, HugePages: shm.Off, Lock: shm.Off})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := bridge.NewSender(ctx, nc, name, bridge.SenderOptions{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bridge.SetBeforeEndHook(func() { time.Sleep(300 * time.Millisecond) })
	defer bridge.SetBeforeEndHook(nil)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	for i := range 20 {
		if err := p.Send(ctx, []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	// End only once the Sender released every item: the end then comes
	// after the last release, the order in which telling the drain first
	// would lose it.
	for p.Ring().Tail() < 20 {
		if ctx.Err() != nil {
			t.Fatal("the Sender did not release the 20 items within 60s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.End(ctx); err != nil {
		t.Fatalf("producer End: %v", err)
	}
	// The ring is drained and gone: the end must be stored already.
	st := streamOf(ctx, t, nc, subject)
	m, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(bridge.HeaderEnd) != "20" {
		t.Fatalf("when the producer's End returned, the last message stored was not the end of 20 items (headers %v): the drain was told before the end was published", m.Header)
	}
	select {
	case err := <-runErr:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return within 60s")
	}
	if st := s.Stats(); st.Items != 20 {
		t.Fatalf("Stats().Items = %d, want 20", st.Items)
	}
}
