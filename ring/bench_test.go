package ring

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchSize is the item size of the bandwidth benchmarks (the CLI's default slot).
const benchSize = 8 << 20

// gibps reports the bandwidth of b as a GiB/s metric.
func gibps(b *testing.B, bytesPerOp int) {
	b.ReportMetric(float64(b.N)*float64(bytesPerOp)/b.Elapsed().Seconds()/(1<<30), "GiB/s")
}

// must stops the benchmark on an error.
func must(b *testing.B, err error) {
	if err != nil {
		b.Helper()
		b.Fatal(err)
	}
}

// BenchmarkItem is the whole per-item overhead of the zero-copy protocol with 64-byte
// slots on one goroutine: Reserve, write 64 bytes, Commit (CRC of the slot), Acquire,
// Verify, Release.
func BenchmarkItem(b *testing.B) {
	r, _ := newRing(b, 64, 64)
	w, rd := r.Writer(), r.Reader()
	src := make([]byte, 64)
	fill(src, 1)
	b.ReportAllocs()
	for b.Loop() {
		s, err := w.Reserve()
		must(b, err)
		copy(s.Buf, src)
		must(b, w.Commit(64))
		it, err := rd.Acquire()
		must(b, err)
		must(b, rd.Verify(it))
		must(b, rd.Release(it.Seq))
	}
}

// BenchmarkStep times each step of BenchmarkItem alone. Every op moves a batch of 64
// items (the ring's size) through all steps and clocks the named step around its batch
// (no StopTimer: it would read memory statistics each time); ns/item is that step's
// per-item time, ns/op and allocs/op cover the whole batch.
func BenchmarkStep(b *testing.B) {
	const n = 64
	for _, name := range []string{"Reserve+Commit", "Reserve+CopyCRC+CommitCRC", "Acquire", "AcquireCopy", "Verify", "Release"} {
		b.Run(name, func(b *testing.B) {
			r, _ := newRing(b, n, 64)
			w, rd := r.Writer(), r.Reader()
			src := make([]byte, 64)
			fill(src, 1)
			its := make([]Item, n)
			dsts := make([][]byte, n)
			for i := range dsts {
				dsts[i] = make([]byte, 64)
			}
			produce := func() {
				for range n {
					s, err := w.Reserve()
					must(b, err)
					copy(s.Buf, src)
					must(b, w.Commit(64))
				}
			}
			produceCRC := func() {
				for range n {
					s, err := w.Reserve()
					must(b, err)
					must(b, w.CommitCRC(64, CopyCRC(s.Buf, src)))
				}
			}
			acquire := func() {
				for i := range n {
					var err error
					its[i], err = rd.Acquire()
					must(b, err)
				}
			}
			acquireCopy := func() {
				for i := range n {
					var err error
					its[i], err = rd.AcquireCopy(dsts[i])
					must(b, err)
				}
			}
			verify := func() {
				for i := range n {
					must(b, rd.Verify(its[i]))
				}
			}
			release := func() {
				for i := range n {
					must(b, rd.Release(its[i].Seq))
				}
			}
			steps := map[string][]func(){
				"Reserve+Commit":            {produce, acquire, verify, release},
				"Reserve+CopyCRC+CommitCRC": {produceCRC, acquire, verify, release},
				"Acquire":                   {produce, acquire, verify, release},
				"AcquireCopy":               {produce, acquireCopy, verify, release},
				"Verify":                    {produce, acquire, verify, release},
				"Release":                   {produce, acquire, verify, release},
			}[name]
			timed := map[string]int{"Reserve+Commit": 0, "Reserve+CopyCRC+CommitCRC": 0, "Acquire": 1, "AcquireCopy": 1, "Verify": 2, "Release": 3}[name]
			var stepTime time.Duration
			b.ReportAllocs()
			for b.Loop() {
				for k, f := range steps {
					if k == timed {
						t0 := time.Now()
						f()
						stepTime += time.Since(t0)
					} else {
						f()
					}
				}
			}
			b.ReportMetric(float64(stepTime.Nanoseconds())/float64(b.N*n), "ns/item")
		})
	}
}

// BenchmarkSPSC is the per-item cost with the producer and the consumer on two
// goroutines (spinning with Gosched when full or empty), 64-byte items.
func BenchmarkSPSC(b *testing.B) {
	r, _ := newRing(b, 64, 64)
	w, rd := r.Writer(), r.Reader()
	src := make([]byte, 64)
	fill(src, 1)
	b.ReportAllocs()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			it, err := rd.Acquire()
			if err == ErrEmpty {
				runtime.Gosched()
				continue
			}
			if err == io.EOF {
				return
			}
			if err == nil {
				err = rd.Verify(it)
			}
			if err == nil {
				err = rd.Release(it.Seq)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for b.Loop() {
		for {
			s, err := w.Reserve()
			if err == ErrFull {
				runtime.Gosched()
				continue
			}
			must(b, err)
			must(b, w.CommitCRC(64, CopyCRC(s.Buf, src)))
			break
		}
	}
	must(b, w.End())
	wg.Wait()
}

// BenchmarkCRC32C is CRC (internal/crc32c) over one 8 MiB item.
func BenchmarkCRC32C(b *testing.B) {
	buf := make([]byte, benchSize)
	fill(buf, 3)
	b.SetBytes(benchSize)
	for b.Loop() {
		CRC(buf)
	}
	gibps(b, benchSize)
}

// copyBufs returns ns sources and nd destinations of 8 MiB. One buffer stays in the
// 32 MiB L3 cache of the test machine between iterations ("hot"); six (48 MiB) rotate
// and do not ("cold").
func copyBufs(ns, nd int) (srcs, dsts [][]byte) {
	for i := range ns {
		srcs = append(srcs, make([]byte, benchSize))
		fill(srcs[i], uint64(i))
	}
	for range nd {
		dsts = append(dsts, make([]byte, benchSize))
	}
	return srcs, dsts
}

// BenchmarkCopyCRC compares copying 8 MiB and checksumming it in one pass (pieces
// checksummed while in cache) with copy followed by UpdateCRC, in four cache
// situations: "producer" (private source just written, hot; shared slot cold: what
// CopyCRC serves), "consumer" (slot cold, private copy hot: what AcquireCopy's
// copyCRCDst serves), both hot, both cold. The producer and consumer variants checksum
// the side their function checksums (src and dst); "used" marks the function's choice.
func BenchmarkCopyCRC(b *testing.B) {
	for _, sc := range []struct {
		name   string
		ns, nd int
		sumDst bool
	}{
		{"producer", 1, 6, false},
		{"consumer", 6, 1, true},
		{"hot", 1, 1, false},
		{"cold", 6, 6, false},
	} {
		srcs, dsts := copyBufs(sc.ns, sc.nd)
		src := func(i int) []byte { return srcs[i%len(srcs)] }
		dst := func(i int) []byte { return dsts[i%len(dsts)] }
		b.Run(sc.name+"/copy-only", func(b *testing.B) {
			b.SetBytes(benchSize)
			i := 0
			for b.Loop() {
				copy(dst(i), src(i))
				i++
			}
			gibps(b, benchSize)
		})
		b.Run(sc.name+"/copy+UpdateCRC", func(b *testing.B) {
			b.SetBytes(benchSize)
			i := 0
			for b.Loop() {
				copy(dst(i), src(i))
				if sc.sumDst {
					UpdateCRC(0, dst(i))
				} else {
					UpdateCRC(0, src(i))
				}
				i++
			}
			gibps(b, benchSize)
		})
		for _, chunk := range []int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/one-pass-%dKiB", sc.name, chunk>>10), func(b *testing.B) {
				b.SetBytes(benchSize)
				i := 0
				for b.Loop() {
					copyCRC(dst(i), src(i), chunk, sc.sumDst)
					i++
				}
				gibps(b, benchSize)
			})
		}
		used, f := "CopyCRC", CopyCRC
		if sc.sumDst {
			used, f = "copyCRCDst", copyCRCDst
		}
		b.Run(sc.name+"/"+used+"(used)", func(b *testing.B) {
			b.SetBytes(benchSize)
			i := 0
			for b.Loop() {
				f(dst(i), src(i))
				i++
			}
			gibps(b, benchSize)
		})
	}
}

// copyCRC copies src to dst in pieces of chunk bytes and checksums each piece right
// after copying it, from dst when sumDst is set, else from src: the piece-size
// baseline BenchmarkCopyCRC compares the kernels with.
func copyCRC(dst, src []byte, chunk int, sumDst bool) uint32 {
	n := min(len(dst), len(src))
	var crc uint32
	for off := 0; off < n; off += chunk {
		end := min(off+chunk, n)
		copy(dst[off:end], src[off:end])
		if sumDst {
			crc = UpdateCRC(crc, dst[off:end])
		} else {
			crc = UpdateCRC(crc, src[off:end])
		}
	}
	return crc
}
