package consumer_test

import (
	"context"
	"fmt"
	"io"
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

// A pull loop: Next returns the items in order, io.EOF at the end of the
// stream; each item is released when the caller is done with it.
func ExampleConsumer_Next() {
	ctx := context.Background()
	name := fmt.Sprintf("example-next-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 2, SlotSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	go func() {
		for _, s := range []string{"one", "two", "three"} {
			if err := p.Send(ctx, []byte(s)); err != nil {
				return
			}
		}
		_ = p.End(ctx)
	}()

	c, err := consumer.Open(ctx, name, consumer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	for {
		it, err := c.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("next:", err)
			return
		}
		fmt.Printf("item %d: %s\n", it.Seq, it.Data)
		if err := it.Release(); err != nil {
			fmt.Println("release:", err)
			return
		}
	}
	// Output:
	// item 0: one
	// item 1: two
	// item 2: three
}

// Gathering items into one buffer: with Copy, NextInto makes each item's
// verified copy right after the ones before it, so the batch goes out in
// one write without copying the items again.
func ExampleConsumer_NextInto() {
	ctx := context.Background()
	name := fmt.Sprintf("example-nextinto-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	go func() {
		for _, s := range []string{"one ", "two ", "three"} {
			if err := p.Send(ctx, []byte(s)); err != nil {
				return
			}
		}
		_ = p.End(ctx)
	}()

	c, err := consumer.Open(ctx, name, consumer.Options{Copy: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	batch := make([]byte, 0, 64)
	var held []consumer.Item
	for {
		it, err := c.NextInto(ctx, batch[len(batch):cap(batch)])
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("next:", err)
			return
		}
		batch = batch[:len(batch)+len(it.Data)] // it fits: it is there
		held = append(held, it)
	}
	fmt.Printf("%d items in one buffer: %q\n", len(held), batch)
	for _, it := range held {
		if err := it.Release(); err != nil {
			fmt.Println("release:", err)
		}
	}
	// Output:
	// 3 items in one buffer: "one two three"
}

// The stream as bytes: io.Copy uses the Reader's WriteTo, which writes
// each verified item straight from its buffer.
func ExampleConsumer_Reader() {
	ctx := context.Background()
	name := fmt.Sprintf("example-reader-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 2, SlotSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	go func() {
		for _, s := range []string{"hello, ", "shared ", "memory\n"} {
			if err := p.Send(ctx, []byte(s)); err != nil {
				return
			}
		}
		_ = p.End(ctx)
	}()

	c, err := consumer.Open(ctx, name, consumer.Options{Copy: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	if _, err := io.Copy(os.Stdout, c.Reader(ctx)); err != nil {
		fmt.Println("copy:", err)
	}
	// Output:
	// hello, shared memory
}
