//go:build !purego

package payload

import (
	"bytes"
	"hash/crc32"
	"testing"

	"golang.org/x/sys/cpu"
	"pgregory.net/rapid"
)

func needKernel(t testing.TB) {
	t.Helper()
	if !haveKernel {
		t.Skip("this CPU lacks SSE4.2 with BMI2: no kernel can run, Fill uses the portable code")
	}
}

// kernels lists the kernels this CPU can run (a CPU with the AVX-512
// kernel can run the AVX2 one too), or skips.
func kernels(t testing.TB) []int {
	t.Helper()
	needKernel(t)
	ks := []int{kernel}
	if kernel == kernelAVX512 && cpu.X86.HasAVX2 && hasVPCLMULQDQ() {
		ks = append(ks, kernelAVX2)
	}
	if kernel != kernelScalar && cpu.X86.HasBMI2 {
		ks = append(ks, kernelScalar)
	}
	return ks
}

var kernelNames = map[int]string{kernelAVX512: "avx512", kernelAVX2: "avx2", kernelScalar: "sse42"}

// checkKernel fills a buffer with the kernel and with the portable code and
// requires the same bytes and CRC. The kernel's destination starts full of
// junk (it must not read it) and is followed and preceded by guard bytes (it
// must not write past len(dst), also where a partial group masks its stores).
func checkKernel(t interface{ Fatalf(string, ...any) }, k int, seq uint64, n, off int) {
	const guard = 128
	want := make([]byte, n)
	var g Generator
	wantCRC := g.fillGo(want, seq)

	buf := make([]byte, off+n+guard)
	fillFrom(buf, 0x5EED^uint64(n)) // junk
	before := bytes.Clone(buf)
	dst := buf[off : off+n]
	gotCRC := fillWith(k, nil, dst, seq)
	if !bytes.Equal(dst, want) {
		i := 0
		for dst[i] == want[i] {
			i++
		}
		t.Fatalf("%s kernel (seq %d, len %d, offset %d): byte %d is %#02x, the portable code wrote %#02x", kernelNames[k], seq, n, off, i, dst[i], want[i])
	}
	if gotCRC != wantCRC {
		t.Fatalf("%s kernel (seq %d, len %d): CRC %#08x, the portable code %#08x", kernelNames[k], seq, n, gotCRC, wantCRC)
	}
	if c := crc32.Checksum(dst, Table()); c != gotCRC {
		t.Fatalf("%s kernel (seq %d, len %d): CRC %#08x, hash/crc32 of its bytes %#08x", kernelNames[k], seq, n, gotCRC, c)
	}
	if !bytes.Equal(buf[:off], before[:off]) || !bytes.Equal(buf[off+n:], before[off+n:]) {
		t.Fatalf("%s kernel (seq %d, len %d, offset %d) wrote outside its destination", kernelNames[k], seq, n, off)
	}
}

// TestKernelMatchesGo: the AVX-512 kernel and the portable code agree byte
// for byte and CRC for CRC on random sequence numbers, lengths (odd ones,
// partial rows, partial chunks, partial groups of eight chunks) and
// alignments, with regular and with non-temporal stores.
func TestKernelMatchesGo(t *testing.T) {
	ks := kernels(t)
	defer func(old int) { ntThreshold = old }(ntThreshold)
	rapid.Check(t, func(t *rapid.T) {
		seq := rapid.Uint64().Draw(t, "seq")
		n := rapid.OneOf(
			rapid.IntRange(0, 200),
			rapid.IntRange(0, 3*8*ChunkBytes+100),
			rapid.SampledFrom([]int{64, 8192, 8191, 8193, 8 * ChunkBytes, 8*ChunkBytes - 1, 8*ChunkBytes + 64, 9 * ChunkBytes}),
		).Draw(t, "len")
		off := rapid.IntRange(0, 70).Draw(t, "offset")
		ntThreshold = rapid.SampledFrom([]int{0, 1}).Draw(t, "nt")
		checkKernel(t, rapid.SampledFrom(ks).Draw(t, "kernel"), seq, n, off)
	})
}

// TestKernelLengths: every length near a whole number of chunks
// (one to nine: a lone chunk, partial and whole groups of eight, a group
// and more) and a spread of lengths in between, so each combination of
// kernel groups and tail is covered.
func TestKernelLengths(t *testing.T) {
	ks := kernels(t)
	rapid.Check(t, func(t *rapid.T) {
		checkKernel(t, rapid.SampledFrom(ks).Draw(t, "kernel"), rapid.Uint64().Draw(t, "seq"), rapid.IntRange(0, 2*ChunkBytes+130).Draw(t, "len"), 0)
	})
	check := func(n int) {
		for _, k := range ks {
			checkKernel(t, k, uint64(n)*7919, n, n%13)
		}
	}
	for n := 0; n <= 300; n++ {
		check(n) // a tail only
	}
	for k := 1; k <= 9; k++ {
		for d := -70; d <= 140; d++ {
			check(k*ChunkBytes + d) // around each whole number of chunks
		}
	}
	for n := 301; n <= 9*ChunkBytes; n += 1 + n/61 {
		check(n)
	}
}

// TestFoldConstants checks the GF(2) arithmetic the kernels' constants
// come from against the definition: x^n mod P by repeated multiplication by x.
func TestFoldConstants(t *testing.T) {
	r := uint32(1)
	for n := uint64(0); n <= 70000; n++ {
		if n == 32 && r != crcPoly {
			t.Fatalf("x^32 mod P = %#x, want the polynomial %#x", r, uint32(crcPoly))
		}
		if n%997 == 0 || n == 63+512 || n == 511 || n == 63+65536 || n == 65535 {
			if got := xPowMod(n); got != r {
				t.Fatalf("xPowMod(%d) = %#x, repeated multiplication gives %#x", n, got, r)
			}
		}
		r = timesX(r)
	}
	if consts.row != foldPair(512) || consts.row2 != foldPair(256) || consts.quad2 != foldPair(1024) ||
		consts.lanes[6] != 0 || consts.lanes[7] != 0 {
		t.Fatal("constants table does not hold the fold pairs")
	}
}

// BenchmarkFillRingCached is BenchmarkFillRing with ordinary stores
// instead of non-temporal ones.
func BenchmarkFillRingCached(b *testing.B) {
	needKernel(b)
	defer func(old int) { ntThreshold = old }(ntThreshold)
	ntThreshold = 0
	benchRing(b, Fill)
}

// TestKernelNonTemporal runs the non-temporal store path for certain: Go
// allocates objects this large page-aligned, so every group starts 64-byte
// aligned.
func TestKernelNonTemporal(t *testing.T) {
	ks := kernels(t)
	defer func(old int) { ntThreshold = old }(ntThreshold)
	ntThreshold = 1
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.SampledFrom([]int{8 * ChunkBytes, 24 * ChunkBytes, 17*ChunkBytes + 100}).Draw(t, "len")
		checkKernel(t, rapid.SampledFrom(ks).Draw(t, "kernel"), rapid.Uint64().Draw(t, "seq"), n, 0)
	})
}

// TestKernelChecksum: each kernel's Checksum agrees with hash/crc32 on
// random data, lengths and alignments.
func TestKernelChecksum(t *testing.T) {
	ks := kernels(t)
	rapid.Check(t, func(t *rapid.T) {
		k := rapid.SampledFrom(ks).Draw(t, "kernel")
		n := rapid.IntRange(kernelMinChecksum, 100000).Draw(t, "len")
		off := rapid.IntRange(0, 63).Draw(t, "offset")
		buf := make([]byte, off+n)
		fillFrom(buf, rapid.Uint64().Draw(t, "seed")|1)
		b := buf[off:]
		if got, want := checksumWith(k, b), crc32.Checksum(b, Table()); got != want {
			t.Fatalf("%s checksum of %d bytes at offset %d = %#x, hash/crc32 says %#x", kernelNames[k], n, off, got, want)
		}
	})
}

func BenchmarkFillRingAVX2(b *testing.B) {
	if !cpu.X86.HasAVX2 || !hasVPCLMULQDQ() {
		b.Skip("no AVX2 with VPCLMULQDQ")
	}
	benchRing(b, func(dst []byte, seq uint64) uint32 { return fillWith(kernelAVX2, nil, dst, seq) })
}

func BenchmarkChecksum8MiBAVX2(b *testing.B) {
	if !cpu.X86.HasAVX2 || !hasVPCLMULQDQ() {
		b.Skip("no AVX2 with VPCLMULQDQ")
	}
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		checksumWith(kernelAVX2, buf)
	}
}

func BenchmarkFillRingScalar(b *testing.B) {
	if !cpu.X86.HasSSE42 || !cpu.X86.HasBMI2 {
		b.Skip("no SSE4.2 and BMI2")
	}
	benchRing(b, func(dst []byte, seq uint64) uint32 { return fillWith(kernelScalar, nil, dst, seq) })
}

func BenchmarkChecksum8MiBScalar(b *testing.B) {
	if !cpu.X86.HasSSE42 || !cpu.X86.HasBMI2 {
		b.Skip("no SSE4.2 and BMI2")
	}
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		checksumWith(kernelScalar, buf)
	}
}
