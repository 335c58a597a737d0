package producer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
)

// Reserve a slot, write the item into shared memory, and commit its length
// with a CRC computed from the source as it is copied in (which is what Send
// does in one call). A consumer in the same process stands in for the other
// process.
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

// The fastest zero-copy pattern: the item is produced straight into the
// slot, piece by piece, and each piece is checksummed right after it was
// written, while it is still in the cache. The slot is never read back, and
// the checksum describes the data as it was written.
func ExampleProducer_CommitCRC() {
	ctx := context.Background()
	name := fmt.Sprintf("example-pieces-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 64 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	done := make(chan error, 1)
	var total int
	go func() {
		err := c.Run(ctx, func(seq uint64, data []byte) error {
			total += len(data) // one worker: no other goroutine runs the handler
			return nil
		})
		c.Close() // as a consumer process would exit
		done <- err
	}()

	const piece = 16 << 10
	for i := range 10 {
		s, err := p.Reserve(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		var crc uint32
		n := 0
		for n < len(s.Buf) {
			b := s.Buf[n : n+piece]
			for j := range b { // produce the piece in place (here: a pattern)
				b[j] = byte(i + n + j)
			}
			crc = ring.UpdateCRC(crc, b) // while b is in the cache
			n += len(b)
		}
		if err := p.CommitCRC(n, crc); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := p.End(ctx); err != nil {
		fmt.Println(err)
	}
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	fmt.Println("bytes delivered:", total)
	// Output: bytes delivered: 655360
}

// A byte stream through the ring: Write cuts it into items of the slot
// size (the last one shorter), io.Copy reads straight into the slots
// (Writer.ReadFrom: one item per Read), and Close ends the stream.
func ExampleWriter() {
	ctx := context.Background()
	name := fmt.Sprintf("example-writer-%d", os.Getpid())
	p, err := producer.Open(ctx, name, producer.Options{Slots: 4, SlotSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	done := make(chan error, 1)
	var sizes []int
	go func() {
		err := c.Run(ctx, func(seq uint64, data []byte) error {
			sizes = append(sizes, len(data)) // one worker: items come in order
			return nil
		})
		c.Close() // as a consumer process would exit
		done <- err
	}()

	w := p.Writer(ctx)
	for i := range 1000 {
		if _, err := fmt.Fprintf(w, "line %04d\n", i); err != nil { // 10 bytes each
			fmt.Println(err)
			return
		}
	}
	if err := w.Flush(); err != nil { // commit the partial item now
		fmt.Println(err)
		return
	}
	// A source of 6000 bytes, as a file would be: io.Copy calls
	// w.ReadFrom(file), which reads up to a slot at a time into the slots.
	file := io.LimitReader(strings.NewReader(strings.Repeat("x", 1<<20)), 6000)
	if _, err := io.Copy(w, file); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Close(); err != nil { // flushes, ends the stream, waits for the drain
		fmt.Println(err)
	}
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	fmt.Println("item sizes:", sizes)
	// Output: item sizes: [4096 4096 1808 4096 1904]
}
