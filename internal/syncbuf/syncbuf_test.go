package syncbuf

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentWriterAndReaders: run with -race; every write is kept.
func TestConcurrentWriterAndReaders(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 1000 {
			fmt.Fprintf(&b, "%d\n", i)
		}
	}()
	for range 100 {
		_ = b.String()
		_ = b.Bytes()
	}
	wg.Wait()
	var want []byte
	for i := range 1000 {
		want = fmt.Appendf(want, "%d\n", i)
	}
	if got := b.Bytes(); string(got) != string(want) {
		t.Fatalf("the buffer holds %d bytes, want %d", len(got), len(want))
	}
}
