package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
)

// A producer and a consumer in one process, through a real shared memory
// segment: the producer sends three items and ends the stream; the consumer
// checks and prints them; End returns once they are all released, and
// Close removes the ring's objects.
func Example() {
	ctx := context.Background()
	name := fmt.Sprintf("example-%d", os.Getpid())

	p, err := producer.Open(ctx, name, producer.Options{Slots: 2, SlotSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	c, err := consumer.Open(ctx, name, consumer.Options{Ordered: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := c.Run(ctx, func(seq uint64, data []byte) error {
			fmt.Printf("item %d: %s\n", seq, data)
			return nil
		})
		if err != nil {
			fmt.Println("consumer:", err)
		}
	}()

	for _, s := range []string{"alpha", "beta", "gamma"} {
		if err := p.Send(ctx, []byte(s)); err != nil {
			fmt.Println("send:", err)
			return
		}
	}
	if err := p.End(ctx); err != nil {
		fmt.Println("end:", err)
	}
	wg.Wait()
	fmt.Println("delivered:", c.Stats().Items)
	// Output:
	// item 0: alpha
	// item 1: beta
	// item 2: gamma
	// delivered: 3
}
