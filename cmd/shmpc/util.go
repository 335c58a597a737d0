package main

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/ring"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func gibPerSec(bytes uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / (1 << 30) / seconds
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress prints the ring's transfer state on one line of stderr every
// half second.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func startProgress(w io.Writer, role string, r *ring.Ring, lines bool) *progress {
	p := &progress{done: make(chan struct{})}
	term := isTerminal(w)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		lastBytes, lastT := r.Stats().Bytes, start
		for {
			select {
			case <-p.done:
				if term {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case now := <-t.C:
				st := r.Stats()
				rate := float64(st.Bytes-lastBytes) / (1 << 30) / now.Sub(lastT).Seconds()
				lastBytes, lastT = st.Bytes, now
				head, tail := r.Head(), r.Tail()
				msg := fmt.Sprintf("shmpc %s: %s delivered, %d items, %.2f GiB/s, ring %d/%d full",
					role, formatBytes(st.Bytes), st.Items, rate, head-tail, r.Slots())
				if term {
					fmt.Fprintf(w, "\r\033[K%s", msg)
				} else if lines {
					fmt.Fprintln(w, msg)
				}
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}
