package crc32c

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// guard is the byte CopyUpdate's tests fill destinations with, and the
// number of guard bytes after the copy.
const (
	guard    = 0xA5
	guardLen = 64
)

// checkCopy runs i.CopyUpdate(crc, dst, src) with src at offset srcOff of
// buf (n bytes) into a fresh destination at offset dstOff, longer than src
// by guardLen bytes, and checks the CRC against hash/crc32, the copied
// bytes, and that no byte outside the copy changed.
func checkCopy(t testing.TB, i Impl, crc uint32, buf []byte, srcOff, dstOff, n int, dstBuf []byte) {
	t.Helper()
	src := buf[srcOff : srcOff+n]
	whole := dstBuf[:dstOff+n+guardLen]
	for k := range whole {
		whole[k] = guard
	}
	got := i.CopyUpdate(crc, whole[dstOff:], src)
	if w := want(crc, src); got != w {
		t.Fatalf("%s: CopyUpdate(%#x) of %d bytes, src offset %d, dst offset %d = %#08x, hash/crc32 says %#08x",
			i, crc, n, srcOff, dstOff, got, w)
	}
	for k, c := range whole {
		inCopy := k >= dstOff && k < dstOff+n
		if inCopy && c != src[k-dstOff] || !inCopy && c != guard {
			t.Fatalf("%s: CopyUpdate of %d bytes, src offset %d, dst offset %d: dst byte %d (copy at %d) is %#x",
				i, n, srcOff, dstOff, k, dstOff, c)
		}
	}
}

// logCopyKernel logs which copy kernel CopyUpdate runs with each kernel.
func logCopyKernel(t *testing.T) {
	for _, i := range allImpls {
		if i.Available() {
			t.Logf("CopyUpdate with %s: fused copy kernel %v", i, fusedCopy(i))
		}
	}
	t.Logf("package CopyUpdate uses %s (fused copy kernel %v)", Kernel(), fusedCopy(Best()))
}

// TestCopyUpdateAllLengths: every length from 0 to 1024, from 0 and from a
// nonzero CRC, at src and dst alignments sampled from 0 to 63.
func TestCopyUpdateAllLengths(t *testing.T) {
	logCopyKernel(t)
	buf := randomBytes(11, 1024+64)
	dst := make([]byte, 1024+128+guardLen)
	forEachImpl(t, func(t *testing.T, i Impl) {
		r := rand.New(rand.NewPCG(11, uint64(i)))
		for n := 0; n <= 1024; n++ {
			so, do := r.IntN(64), r.IntN(64)
			checkCopy(t, i, 0, buf, so, do, n, dst)
			checkCopy(t, i, 0xDEADBEEF, buf, do, so, n, dst)
		}
	})
}

// TestCopyUpdateAlignments: every src/dst alignment pair from 0 to 63 with
// a random length up to 2 KiB, and sampled pairs with random lengths up to
// 64 KiB + 1 KiB (around the non-temporal threshold) and up to 4 MiB. The
// seed is logged.
func TestCopyUpdateAlignments(t *testing.T) {
	const maxLen = 4 << 20
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	logCopyKernel(t)
	buf := randomBytes(seed, maxLen+64)
	dst := make([]byte, maxLen+64+guardLen)
	forEachImpl(t, func(t *testing.T, i Impl) {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		for so := range 64 {
			for do := range 64 {
				checkCopy(t, i, r.Uint32(), buf, so, do, r.IntN(2049), dst)
			}
		}
		for so := range 64 {
			do := r.IntN(64)
			checkCopy(t, i, r.Uint32(), buf, so, do, minNT-1024+r.IntN(2049), dst)
			checkCopy(t, i, r.Uint32(), buf, so, do, r.IntN(maxLen+1), dst)
		}
		for _, n := range []int{minNT - 1, minNT, minNT + 1, maxLen} {
			checkCopy(t, i, 1, buf, 3, 5, n, dst)
		}
	})
}

// TestCopyUpdateChaining: CopyUpdate over random pieces of a buffer chains
// to its Checksum and copies it whole, with a nonzero initial CRC too.
func TestCopyUpdateChaining(t *testing.T) {
	forEachImpl(t, func(t *testing.T, i Impl) {
		rapid.Check(t, func(t *rapid.T) {
			n := rapid.OneOf(rapid.IntRange(0, 2048), rapid.IntRange(0, 300000)).Draw(t, "len")
			off := rapid.IntRange(0, 63).Draw(t, "offset")
			src := randomBytes(rapid.Uint64().Draw(t, "seed"), off+n)[off:]
			dst := make([]byte, n+rapid.IntRange(0, 63).Draw(t, "dst offset"))
			dst = dst[len(dst)-n:]
			cut := rapid.IntRange(0, n).Draw(t, "cut")
			init := rapid.Uint32().Draw(t, "crc")
			crc := i.CopyUpdate(init, dst, src[:cut])
			crc = i.CopyUpdate(crc, dst[cut:], src[cut:])
			if w := want(init, src); crc != w {
				t.Fatalf("CopyUpdate(%#x) over %d bytes cut at %d = %#08x, hash/crc32 says %#08x", init, n, cut, crc, w)
			}
			require.Equal(t, src, dst)
			if init == 0 {
				require.Equal(t, Checksum(src), crc)
			}
		})
	})
}

// TestCopyUpdateOverlap: with dst and src overlapping, the CRC is that of
// src before the copy and dst ends as copy leaves it.
func TestCopyUpdateOverlap(t *testing.T) {
	forEachImpl(t, func(t *testing.T, i Impl) {
		for _, n := range []int{100, 1000, 100000} {
			for _, d := range []int{-33, -1, 0, 1, 33} {
				buf := randomBytes(uint64(n), n+80)
				ref := append([]byte(nil), buf...)
				src := buf[40 : 40+n]
				dst := buf[40+d : 40+d+n]
				w := want(5, src)
				copy(ref[40+d:40+d+n], ref[40:40+n])
				require.Equalf(t, w, i.CopyUpdate(5, dst, src), "%d bytes, dst at %+d", n, d)
				require.Equalf(t, ref, buf, "%d bytes, dst at %+d", n, d)
			}
		}
	})
}

// TestCopyUpdateAPI: the package's CopyUpdate is Best's, a short dst
// panics, nothing allocates.
func TestCopyUpdateAPI(t *testing.T) {
	src := randomBytes(12, 200000)
	dst := make([]byte, len(src))
	require.Equal(t, want(9, src), CopyUpdate(9, dst, src))
	require.Equal(t, src, dst)
	require.Panics(t, func() { CopyUpdate(0, dst[:10], src[:11]) })
	require.Panics(t, func() { Generic.CopyUpdate(0, dst[:10], src[:11]) })
	require.Equal(t, uint32(0), CopyUpdate(0, nil, nil))
	require.Equal(t, uint32(7), CopyUpdate(7, dst, nil))
	for _, i := range allImpls {
		if !i.Available() {
			require.Panics(t, func() { i.CopyUpdate(0, dst, src) })
		}
	}
	forEachImpl(t, func(t *testing.T, i Impl) {
		require.Zero(t, testing.AllocsPerRun(5, func() { i.CopyUpdate(0, dst, src) }))
	})
}

// TestCopyUpdateAVX2Off reruns the CopyUpdate tests in a child process
// with GODEBUG=cpu.avx2=off, where the package must fall back to copy and
// Update (the sse42 kernel or hash/crc32).
func TestCopyUpdateAVX2Off(t *testing.T) {
	if os.Getenv("SHMPC_CRC32C_CHILD") != "" {
		if Best() >= AVX2 {
			t.Fatalf("GODEBUG=cpu.avx2=off, but Best is %s", Best())
		}
		require.False(t, fusedCopy(Best()))
		return
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCopyUpdate", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=cpu.avx2=off,cpu.avx512f=off", "SHMPC_CRC32C_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child with GODEBUG=cpu.avx2=off: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "package CopyUpdate uses") {
			t.Logf("child with GODEBUG=cpu.avx2=off,cpu.avx512f=off passed; %s", l[strings.Index(l, "package CopyUpdate uses"):])
			return
		}
	}
	t.Logf("child with GODEBUG=cpu.avx2=off,cpu.avx512f=off passed")
}

// BenchmarkCopyUpdate: CopyUpdate against copy then Update (in 1 MiB
// pieces, as ring.CopyCRC did) from one in-cache source to destinations
// taken in turn from eight buffers of 8 MiB (64 MiB, twice the test
// machine's L3 cache), so dst is cold as a ring's slot is.
func BenchmarkCopyUpdate(b *testing.B) {
	const slot, nslots = 8 << 20, 8
	dsts := make([][]byte, nslots)
	for k := range dsts {
		dsts[k] = make([]byte, slot)
		for j := range dsts[k] {
			dsts[k][j] = byte(j)
		}
	}
	for _, n := range []int{64 << 10, 1 << 20, 8 << 20} {
		src := randomBytes(uint64(n), n)
		run := func(b *testing.B, f func(dst, src []byte) uint32) {
			b.SetBytes(int64(n))
			k, off := 0, 0
			for b.Loop() {
				if off+n > slot {
					off = 0
					k++
				}
				f(dsts[k%nslots][off:off+n], src)
				off += n
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds()/(1<<30), "GiB/s")
		}
		size := fmt.Sprintf("%dKiB", n>>10)
		b.Run(size+"/copy+Update", func(b *testing.B) {
			run(b, func(dst, src []byte) uint32 { return copyPieces(Best(), 0, dst, src, false) })
		})
		b.Run(size+"/CopyUpdate", func(b *testing.B) {
			run(b, func(dst, src []byte) uint32 { return CopyUpdate(0, dst, src) })
		})
	}
}
