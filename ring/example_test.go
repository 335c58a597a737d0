package ring_test

import (
	"fmt"
	"io"

	"github.com/shmpc/shmpc/ring"
)

// A producer and a consumer on one buffer (in production: a shared segment mapped by
// two processes, each calling Open).
func Example() {
	size, err := ring.Size(4, 4096)
	if err != nil {
		panic(err)
	}
	buf := make([]byte, size)
	if _, err := ring.Format(buf, ring.Config{Name: "demo", Slots: 4, SlotSize: 4096}); err != nil {
		panic(err)
	}

	// Producer process.
	prod, err := ring.Open(buf)
	if err != nil {
		panic(err)
	}
	w := prod.Writer()
	for _, msg := range []string{"hello", "shared", "memory"} {
		s, err := w.Reserve()
		if err != nil {
			panic(err) // ErrFull: wait for the consumer (the producer package rings a doorbell)
		}
		src := []byte(msg)
		crc := ring.CopyCRC(s.Buf, src) // checksum the source, not the slot
		if err := w.CommitCRC(len(src), crc); err != nil {
			panic(err)
		}
	}
	if err := w.End(); err != nil {
		panic(err)
	}

	// Consumer process.
	cons, err := ring.Open(buf)
	if err != nil {
		panic(err)
	}
	rd := cons.Reader()
	for {
		it, err := rd.Acquire()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err) // ErrEmpty: wait for the producer
		}
		if err := rd.Verify(it); err != nil {
			panic(err) // never deliver unverified data
		}
		fmt.Printf("%d %s\n", it.Seq, it.Data)
		if err := rd.Release(it.Seq); err != nil {
			panic(err)
		}
	}
	cons.SetDrained()
	fmt.Println(cons.Stats().Items, "items,", cons.Stats().Bytes, "bytes, drained:", cons.Drained())
	fmt.Println("check:", cons.Check())
	// Output:
	// 0 hello
	// 1 shared
	// 2 memory
	// 3 items, 17 bytes, drained: true
	// check: <nil>
}
