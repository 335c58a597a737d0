package bridge_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// forged is a message a third client publishes on the subject.
func forged(subject, stream string, seq uint64, data []byte, crc uint32) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(bridge.HeaderStream, stream)
	m.Header.Set(bridge.HeaderSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(bridge.HeaderPiece, "0/1")
	m.Header.Set(bridge.HeaderOffset, "0")
	m.Header.Set(bridge.HeaderLen, strconv.Itoa(len(data)))
	m.Header.Set(bridge.HeaderCRC, strconv.FormatUint(uint64(crc), 10))
	m.Header.Set(bridge.HeaderSlots, "2")
	m.Header.Set(bridge.HeaderSlotSize, "4096")
	return m
}

// TestReceiverRefusesForgeries: messages on the subject without valid
// headers are ignored (counted), a well-formed item whose bytes do not match
// its CRC32C is an integrity error and is not committed, and the item before
// it, good, is.
func TestReceiverRefusesForgeries(t *testing.T) {
	s := startServer(t, "", 0)
	nc := connect(t, s)
	name := ringName(t, "brf")
	subject := "shmpc.forged." + name
	ctx := bounded(t, 60*time.Second)
	r, err := bridge.NewReceiver(ctx, nc, name, bridge.ReceiverOptions{
		Subject: subject, Producer: producer.Options{Wait: producer.NoWait, HugePages: shm.Off, Lock: shm.Off},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const stream = "forger-0123456789abcdef"
	good := []byte("a good item")
	bad := []byte("a bad item")
	for _, m := range []*nats.Msg{
		{Subject: subject, Data: []byte("no headers at all")},
		forged(subject, "no-key", 0, good, ring.CRC(good)),
		forged(subject, stream, 0, good, ring.CRC(good)),
		forged(subject, stream, 1, bad, ring.CRC(bad)^1),
	} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	err = r.Run(ctx)
	if !errors.Is(err, bridge.ErrIntegrity) {
		t.Fatalf("Run = %v, want ErrIntegrity", err)
	}
	st := r.Stats()
	if st.Items != 1 || st.Ignored != 2 {
		t.Fatalf("stats %+v, want 1 item committed and 2 messages ignored", st)
	}
}
