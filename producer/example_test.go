package producer_test

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
)

// The zero-copy path: reserve a slot, write the item straight into shared
// memory, and commit its length with a CRC computed from the source. A
// consumer in the same process stands in for the other process.
func ExampleProducer_Reserve() {
	ctx := context.Background()
	name := fmt.Sprintf("example-zc-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 64 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.Run(ctx, func(seq uint64, data []byte) error {
			mu.Lock()
			total += len(data)
			mu.Unlock()
			return nil
		})
	}()

	src := make([]byte, 64<<10)
	for i := range 10 {
		s, err := p.Reserve(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		for j := range src {
			src[j] = byte(i + j)
		}
		crc := ring.CopyCRC(s.Buf, src) // the checksum of src, not of the slot
		if err := p.CommitCRC(len(src), crc); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := p.End(ctx); err != nil {
		fmt.Println(err)
	}
	wg.Wait()
	fmt.Println("bytes delivered:", total)
	// Output: bytes delivered: 655360
}
