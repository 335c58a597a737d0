package crc32c

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockBytes is the scalar kernel's block: three chains of 8 KiB.
const blockBytes = 3 * 8192

// allImpls lists every kernel, slowest first.
var allImpls = []Impl{Generic, SSE42, AVX2, AVX512}

// want is the reference: hash/crc32 with the Castagnoli table.
func want(crc uint32, b []byte) uint32 {
	return crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), b)
}

// forEachImpl runs check in a subtest for each kernel this build and CPU
// can run, skips the subtests of the others, and logs which ran.
func forEachImpl(t *testing.T, check func(t *testing.T, i Impl)) {
	t.Helper()
	var ran, notRun []string
	for _, i := range allImpls {
		if !i.Available() {
			why := whyNot(i)
			notRun = append(notRun, i.String()+" ("+why+")")
			t.Run(i.String(), func(t *testing.T) { t.Skip("not run here: " + why) })
			continue
		}
		ok := t.Run(i.String(), func(t *testing.T) { check(t, i) })
		if ok {
			ran = append(ran, i.String())
		} else {
			ran = append(ran, i.String()+" (FAILED)")
		}
	}
	if len(notRun) == 0 {
		notRun = []string{"none"}
	}
	t.Logf("ran kernels: %s; not run here: %s; Checksum uses %s",
		strings.Join(ran, ", "), strings.Join(notRun, "; "), Kernel())
}

// randomBytes returns n random bytes from seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5EED))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestCheckValue: the CRC32C check value of "123456789" from every kernel
// and from the package's functions.
func TestCheckValue(t *testing.T) {
	const check = 0xE3069283
	msg := []byte("123456789")
	require.Equal(t, uint32(check), Checksum(msg))
	require.Equal(t, uint32(check), Update(Update(0, msg[:4]), msg[4:]))
	require.Equal(t, uint32(check), crc32.Checksum(msg, Table()))
	forEachImpl(t, func(t *testing.T, i Impl) {
		require.Equal(t, uint32(check), i.Checksum(msg))
	})
}

// TestAllLengths: every length from 0 to 1024 (every tail after the
// folding kernels' 128- and 256-byte blocks, and the threshold), from 0 and
// from a nonzero CRC, at alignments 0 and 1, equal to hash/crc32.
func TestAllLengths(t *testing.T) {
	buf := randomBytes(1, 1024+1)
	forEachImpl(t, func(t *testing.T, i Impl) {
		for off := range 2 {
			for n := 0; n <= 1024; n++ {
				b := buf[off : off+n]
				if got, w := i.Checksum(b), want(0, b); got != w {
					t.Fatalf("Checksum of %d bytes at offset %d = %#08x, hash/crc32 says %#08x", n, off, got, w)
				}
				if got, w := i.Update(0xDEADBEEF, b), want(0xDEADBEEF, b); got != w {
					t.Fatalf("Update(0xDEADBEEF) of %d bytes at offset %d = %#08x, hash/crc32 says %#08x", n, off, got, w)
				}
			}
		}
	})
	for n := 0; n <= 1024; n++ {
		if got, w := Checksum(buf[:n]), want(0, buf[:n]); got != w {
			t.Fatalf("package Checksum of %d bytes = %#08x, hash/crc32 says %#08x", n, got, w)
		}
	}
}

// TestBlockBoundaries: lengths around whole numbers of the scalar
// kernel's 24 KiB blocks and of larger powers of two.
func TestBlockBoundaries(t *testing.T) {
	buf := randomBytes(2, 6*blockBytes+300)
	forEachImpl(t, func(t *testing.T, i Impl) {
		check := func(n int) {
			b := buf[n%7 : n%7+n]
			if got, w := i.Checksum(b), want(0, b); got != w {
				t.Fatalf("Checksum of %d bytes = %#08x, hash/crc32 says %#08x", n, got, w)
			}
		}
		for k := 1; k <= 6; k++ {
			for d := -130; d <= 260; d++ {
				check(k*blockBytes + d)
			}
		}
		for _, p := range []int{1 << 12, 1 << 13, 1 << 14, 1 << 16, 1 << 17} {
			for d := -3; d <= 3; d++ {
				check(p + d)
			}
		}
	})
}

// TestRandomLengthsAlignments: at every alignment from 0 to 63, random
// lengths up to 4 MiB (one short, one up to 64 KiB, one up to 4 MiB), equal
// to hash/crc32. The seed is logged.
func TestRandomLengthsAlignments(t *testing.T) {
	const maxLen = 4 << 20
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	buf := randomBytes(seed, maxLen+64)
	forEachImpl(t, func(t *testing.T, i Impl) {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		for off := range 64 {
			for _, limit := range []int{1024, 64 << 10, maxLen} {
				n := r.IntN(limit + 1)
				b := buf[off : off+n]
				if got, w := i.Checksum(b), want(0, b); got != w {
					t.Fatalf("seed %d: Checksum of %d bytes at offset %d = %#08x, hash/crc32 says %#08x", seed, n, off, got, w)
				}
			}
		}
	})
}

// TestUpdateChaining: Update over random pieces of a buffer (random split
// points, empty pieces included) chains to the buffer's Checksum, with each
// kernel and with the kernels mixed.
func TestUpdateChaining(t *testing.T) {
	forEachImpl(t, func(t *testing.T, i Impl) {
		rapid.Check(t, func(t *rapid.T) {
			n := rapid.OneOf(rapid.IntRange(0, 2048), rapid.IntRange(0, 200000)).Draw(t, "len")
			off := rapid.IntRange(0, 63).Draw(t, "offset")
			buf := randomBytes(rapid.Uint64().Draw(t, "seed"), off+n)[off:]
			cuts := rapid.SliceOfN(rapid.IntRange(0, n), 0, 8).Draw(t, "cuts")
			slices.Sort(cuts)
			crc, prev := uint32(0), 0
			for _, c := range append(cuts, n) {
				crc = i.Update(crc, buf[prev:c])
				prev = c
			}
			if w := want(0, buf); crc != w {
				t.Fatalf("Update over %d bytes cut at %v = %#08x, hash/crc32 says %#08x", n, cuts, crc, w)
			}
			if c := Checksum(buf); c != crc {
				t.Fatalf("Checksum of %d bytes = %#08x, chained Update %#08x", n, c, crc)
			}
			// The package's Update, and hash/crc32 after a kernel, chain too.
			if len(cuts) > 0 {
				c := cuts[0]
				if got := want(Update(0, buf[:c]), buf[c:]); got != crc {
					t.Fatalf("hash/crc32 after Update at %d = %#08x, want %#08x", c, got, crc)
				}
				if got := Update(want(0, buf[:c]), buf[c:]); got != crc {
					t.Fatalf("Update after hash/crc32 at %d = %#08x, want %#08x", c, got, crc)
				}
			}
		})
	})
}

// TestCatchesEveryFlip: a single flipped bit changes every kernel's CRC.
func TestCatchesEveryFlip(t *testing.T) {
	forEachImpl(t, func(t *testing.T, i Impl) {
		rapid.Check(t, func(t *rapid.T) {
			n := rapid.IntRange(1, 100000).Draw(t, "len")
			buf := randomBytes(rapid.Uint64().Draw(t, "seed"), n)
			before := i.Checksum(buf)
			k := rapid.IntRange(0, n-1).Draw(t, "byte")
			buf[k] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
			if i.Checksum(buf) == before {
				t.Fatalf("flip of byte %d of %d not caught", k, n)
			}
		})
	})
}

// TestBest: Best is the fastest available kernel, Kernel names it, and
// Checksum uses it; an unavailable kernel panics instead of running.
func TestBest(t *testing.T) {
	b := Best()
	require.True(t, b.Available())
	require.Equal(t, b.String(), Kernel())
	for _, i := range allImpls[b+1:] {
		require.Falsef(t, i.Available(), "%s is available and faster than Best (%s)", i, b)
		require.Panics(t, func() { i.Checksum([]byte{1}) })
	}
	if puregoBuild(t) {
		require.Equal(t, Generic, b, "built with -tags purego")
		for _, i := range allImpls[1:] {
			require.Falsef(t, i.Available(), "%s is available with -tags purego", i)
		}
	}
	require.True(t, Generic.Available())
	require.Equal(t, "Impl(9)", Impl(9).String())
	require.False(t, Impl(9).Available())
	buf := randomBytes(3, 100000)
	require.Equal(t, b.Checksum(buf), Checksum(buf))
	t.Logf("Kernel() = %q", Kernel())
}

func TestAllocatesNothing(t *testing.T) {
	buf := randomBytes(4, 1<<20+77)
	forEachImpl(t, func(t *testing.T, i Impl) {
		require.Zero(t, testing.AllocsPerRun(5, func() { i.Checksum(buf) }))
	})
	require.Zero(t, testing.AllocsPerRun(5, func() { Checksum(buf) }))
	require.Zero(t, testing.AllocsPerRun(5, func() { Update(1, buf[:100]) }))
}

// benchSizes are BenchmarkChecksum's input lengths: L1, L2, L3 cache
// sized and larger.
var benchSizes = []int{4 << 10, 64 << 10, 1 << 20, 8 << 20}

// benchOne runs f over buf, reporting bytes/s (MB/s) and GiB/s.
func benchOne(b *testing.B, buf []byte, f func([]byte) uint32) {
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		f(buf)
	}
	b.ReportMetric(float64(b.N)*float64(len(buf))/b.Elapsed().Seconds()/(1<<30), "GiB/s")
}

// BenchmarkChecksum: each available kernel and hash/crc32 itself
// (crc32.Checksum) over one buffer of each size, checksummed again and
// again (so in cache where it fits).
func BenchmarkChecksum(b *testing.B) {
	for _, n := range benchSizes {
		buf := randomBytes(uint64(n), n)
		size := fmt.Sprintf("%dKiB", n>>10)
		b.Run(size+"/crc32.Checksum", func(b *testing.B) {
			benchOne(b, buf, func(p []byte) uint32 { return crc32.Checksum(p, Table()) })
		})
		for _, i := range allImpls[1:] {
			if !i.Available() {
				continue
			}
			b.Run(size+"/"+i.String(), func(b *testing.B) { benchOne(b, buf, i.Checksum) })
		}
	}
}

// puregoBuild reports whether the test binary was built with -tags purego
// (from its build information, not from which files were compiled).
func puregoBuild(t *testing.T) bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information: cannot tell whether -tags purego was given")
	}
	for _, s := range bi.Settings {
		if s.Key == "-tags" {
			return slices.Contains(strings.Split(s.Value, ","), "purego")
		}
	}
	return false
}

// BenchmarkChecksumCold is BenchmarkChecksum with every input from
// memory, as a slot just written by another core comes: the inputs of
// each size are taken in turn from 64 MiB of buffers, twice the 32 MiB L3
// cache of the test machine.
func BenchmarkChecksumCold(b *testing.B) {
	const total = 64 << 20
	for _, n := range benchSizes {
		bufs := make([][]byte, total/n)
		for k := range bufs {
			bufs[k] = randomBytes(uint64(k), n)
		}
		run := func(b *testing.B, f func([]byte) uint32) {
			b.SetBytes(int64(n))
			k := 0
			for b.Loop() {
				f(bufs[k%len(bufs)])
				k++
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds()/(1<<30), "GiB/s")
		}
		size := fmt.Sprintf("%dKiB", n>>10)
		b.Run(size+"/crc32.Checksum", func(b *testing.B) {
			run(b, func(p []byte) uint32 { return crc32.Checksum(p, Table()) })
		})
		for _, i := range allImpls[1:] {
			if i.Available() {
				b.Run(size+"/"+i.String(), func(b *testing.B) { run(b, i.Checksum) })
			}
		}
	}
}
