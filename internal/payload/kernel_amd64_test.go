//go:build !purego

package payload

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/cpu"
	"pgregory.net/rapid"

	"github.com/shmpc/shmpc/internal/crc32c"
)

func needKernel(t testing.TB) {
	t.Helper()
	if !haveKernel {
		t.Skip("this CPU lacks SSE4.2 with BMI2: no kernel can run, Fill uses the portable code")
	}
}

func init() { rawVPCLMULQDQ = crc32c.HasVPCLMULQDQ }

var kernelNames = map[int]string{kernelAVX512: "avx512", kernelAVX2: "avx2", kernelScalar: "sse42"}

var kernelIDs = map[string]int{"avx512": kernelAVX512, "avx2": kernelAVX2, "sse42": kernelScalar}

// crcImpls maps each fused kernel to the internal/crc32c kernel of the
// same name, which Checksum uses on a CPU where Fill uses the fused one.
var crcImpls = map[int]crc32c.Impl{kernelAVX512: crc32c.AVX512, kernelAVX2: crc32c.AVX2, kernelScalar: crc32c.SSE42}

// forEachKernel runs check in a subtest for each assembly kernel this CPU
// can run (cpuKernels: the one Fill uses and those below it, e.g. sse42 on
// an AVX2 machine), skips the subtests of the others saying what the CPU
// (or GODEBUG) lacks, and logs which kernels ran. Every check compares
// with the portable code, so "go" always runs as the reference.
func forEachKernel(t *testing.T, check func(t *testing.T, k int)) {
	t.Helper()
	var ran, notRun []string
	for _, ks := range cpuKernels() {
		if ks.missing != "" {
			notRun = append(notRun, fmt.Sprintf("%s (%s)", ks.name, ks.missing))
			t.Run(ks.name, func(t *testing.T) { t.Skip("not run here: " + ks.missing) })
			continue
		}
		done := false
		t.Run(ks.name, func(t *testing.T) {
			check(t, kernelIDs[ks.name])
			done = !t.Failed()
		})
		if done {
			ran = append(ran, ks.name)
		} else {
			ran = append(ran, ks.name+" (FAILED)")
		}
	}
	ran = append(ran, "go (the reference)")
	if len(notRun) == 0 {
		notRun = []string{"none"}
	}
	t.Logf("ran kernels: %s; not run here: %s", strings.Join(ran, ", "), strings.Join(notRun, "; "))
}

// checkKernel fills a buffer with the kernel and with the portable code and
// requires the same bytes and CRC. The kernel's destination starts full of
// junk (it must not read it) and is followed and preceded by guard bytes (it
// must not write past len(dst), also where a partial group masks its stores).
//
// It returns how many of the kernel's groups took the non-temporal store
// path (see ntGroups).
func checkKernel(t interface{ Fatalf(string, ...any) }, k int, seq uint64, n, off int) (nt int) {
	const guard = 128
	want := make([]byte, n)
	var g Generator
	wantCRC := g.fillGo(want, seq)

	buf := make([]byte, off+n+guard)
	fillFrom(buf, 0x5EED^uint64(n)) // junk
	before := bytes.Clone(buf)
	dst := buf[off : off+n]
	nt = ntGroups(k, dst)
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
	return nt
}

// TestKernelMatchesGo: each kernel and the portable code agree byte
// for byte and CRC for CRC on random sequence numbers, lengths (odd ones,
// partial rows, partial chunks, partial groups of eight chunks) and
// alignments, with regular and with non-temporal stores.
func TestKernelMatchesGo(t *testing.T) {
	defer func(old int) { ntThreshold = old }(ntThreshold)
	forEachKernel(t, func(t *testing.T, k int) {
		rapid.Check(t, func(t *rapid.T) {
			seq := rapid.Uint64().Draw(t, "seq")
			n := rapid.OneOf(
				rapid.IntRange(0, 200),
				rapid.IntRange(0, 3*8*ChunkBytes+100),
				rapid.SampledFrom([]int{64, 8192, 8191, 8193, 8 * ChunkBytes, 8*ChunkBytes - 1, 8*ChunkBytes + 64, 9 * ChunkBytes}),
			).Draw(t, "len")
			off := rapid.IntRange(0, 70).Draw(t, "offset")
			ntThreshold = rapid.SampledFrom([]int{0, 1}).Draw(t, "nt")
			checkKernel(t, k, seq, n, off)
		})
	})
}

// TestKernelLengths: every length near a whole number of chunks
// (one to nine: a lone chunk, partial and whole groups of eight, a group
// and more) and a spread of lengths in between, so each combination of
// kernel groups and tail is covered.
func TestKernelLengths(t *testing.T) {
	forEachKernel(t, func(t *testing.T, k int) {
		rapid.Check(t, func(t *rapid.T) {
			checkKernel(t, k, rapid.Uint64().Draw(t, "seq"), rapid.IntRange(0, 2*ChunkBytes+130).Draw(t, "len"), 0)
		})
		check := func(n int) { checkKernel(t, k, uint64(n)*7919, n, n%13) }
		for n := 0; n <= 300; n++ {
			check(n) // a tail only
		}
		for c := 1; c <= 9; c++ {
			for d := -70; d <= 140; d++ {
				check(c*ChunkBytes + d) // around each whole number of chunks
			}
		}
		for n := 301; n <= 9*ChunkBytes; n += 1 + n/61 {
			check(n)
		}
	})
}

// TestFoldConstsOffsets pins the offsets of crc32c.FoldConsts' fields
// that this package's assembly reads (kernel_amd64.s: genCRC8 and genCRC4
// take a *crc32c.FoldConsts), and that its Chunk pair folds by one of
// this package's chunks. crc32c's own tests check the constants' values.
func TestFoldConstsOffsets(t *testing.T) {
	var c crc32c.FoldConsts
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"Row (genCRC8: fold by a 64-byte row)", unsafe.Offsetof(c.Row), 0},
		{"Chunk (genCRC8, genCRC4: fold by a chunk)", unsafe.Offsetof(c.Chunk), 16},
		{"Lanes (genCRC8: REDUCE)", unsafe.Offsetof(c.Lanes), 32},
		{"Lanes[4] (genCRC4: REDUCE2, fold by 128 bits)", unsafe.Offsetof(c.Lanes) + 4*8, 64},
		{"Row2 (genCRC4: fold by a 32-byte row)", unsafe.Offsetof(c.Row2), 112},
	} {
		if f.got != f.want {
			t.Errorf("crc32c.FoldConsts.%s is at offset %d, kernel_amd64.s reads %d", f.name, f.got, f.want)
		}
	}
	if ChunkBytes != crc32c.ChainBytes {
		t.Errorf("ChunkBytes = %d, crc32c's Chunk constants and Combine3 are for %d", ChunkBytes, crc32c.ChainBytes)
	}
	// The kernels and crc32c agree on a chunk's CRC only if the Chunk pair
	// folds by 8*ChunkBytes bits: a group of two chunks checks that.
	forEachKernel(t, func(t *testing.T, k int) { checkKernel(t, k, 5, 2*ChunkBytes, 0) })
}

// BenchmarkFillRingCached is BenchmarkFillRing with ordinary stores
// instead of non-temporal ones.
func BenchmarkFillRingCached(b *testing.B) {
	needKernel(b)
	defer func(old int) { ntThreshold = old }(ntThreshold)
	ntThreshold = 0
	benchRing(b, Fill)
}

// ntFrom is the item length from which Fill must write with non-temporal
// stores: 64 KiB, one whole group of eight chunks (ntThreshold's comment
// gives the measurements behind it).
const ntFrom = 8 * ChunkBytes

// ntGroups returns how many kernel calls fillWith(k, _, dst, _) makes with
// non-temporal stores. It follows fillWithNT's grouping and the assembly's
// own test: nt is useNT(len(dst)); genCRC8 (avx512) stores non-temporally
// only a group of 8 chunks at a 64-byte aligned address, genCRC4 (avx2) a
// group of 4 at a 32-byte aligned one (VMOVNTDQ faults on others), and
// genCRC3 (sse42: MOVNTI, no alignment) every group of 3.
func ntGroups(k int, dst []byte) int {
	if !useNT(len(dst)) {
		return 0
	}
	count := 0
	for off := 0; ; {
		n := (len(dst) - off) / ChunkBytes
		p := uintptr(unsafe.Pointer(unsafe.SliceData(dst))) + uintptr(off)
		switch {
		case k == kernelScalar && n >= 3:
			count++
			n = 3
		case k == kernelAVX512 && n >= 2:
			if n >= 8 && p%64 == 0 {
				count++
			}
			n = min(n, 8)
		case k == kernelAVX2 && n >= 2:
			if n >= 4 && p%32 == 0 {
				count++
			}
			n = min(n, 4)
		default:
			return count
		}
		off += n * ChunkBytes
	}
}

// TestKernelNonTemporal proves that Fill takes the non-temporal store path
// from 64 KiB on and not below: useNT (fillWith's decision) must say so for
// lengths on either side of ntFrom, and for each kernel ntGroups must find
// groups that the assembly writes non-temporally in every item from ntFrom
// on (Go allocates objects this large page-aligned) and none below. The
// bytes and CRCs written on that path must match the portable code.
func TestKernelNonTemporal(t *testing.T) {
	if ntThreshold != ntFrom {
		t.Errorf("ntThreshold = %d, want %d (64 KiB)", ntThreshold, ntFrom)
	}
	above := []int{ntFrom, ntFrom + 1, 9*ChunkBytes - 1, 17*ChunkBytes + 100, 24 * ChunkBytes, 1 << 20}
	below := []int{0, 3 * ChunkBytes, 4 * ChunkBytes, 7*ChunkBytes + 100, ntFrom - 1}
	for _, n := range above {
		if !useNT(n) {
			t.Errorf("useNT(%d) = false: an item of %d bytes (>= %d) would not use non-temporal stores", n, n, ntFrom)
		}
	}
	for _, n := range below {
		if useNT(n) {
			t.Errorf("useNT(%d) = true: an item of %d bytes (< %d) would use non-temporal stores", n, n, ntFrom)
		}
	}
	forEachKernel(t, func(t *testing.T, k int) {
		groups := 0
		for _, n := range above {
			before := ntFills.Load()
			nt := checkKernel(t, k, uint64(n), n, 0)
			if nt == 0 {
				t.Errorf("%s kernel, %d bytes (>= %d): no group took the non-temporal path", kernelNames[k], n, ntFrom)
			}
			if ntFills.Load() == before {
				t.Errorf("%s kernel, %d bytes (>= %d): the fill did not ask the kernel for non-temporal stores", kernelNames[k], n, ntFrom)
			}
			groups += nt
		}
		for _, n := range below {
			before := ntFills.Load()
			if nt := checkKernel(t, k, uint64(n), n, 0); nt != 0 {
				t.Errorf("%s kernel, %d bytes (< %d): %d groups took the non-temporal path", kernelNames[k], n, ntFrom, nt)
			}
			if ntFills.Load() != before {
				t.Errorf("%s kernel, %d bytes (< %d): the fill asked the kernel for non-temporal stores", kernelNames[k], n, ntFrom)
			}
		}
		rapid.Check(t, func(rt *rapid.T) {
			n := rapid.SampledFrom(above).Draw(rt, "len")
			if checkKernel(rt, k, rapid.Uint64().Draw(rt, "seq"), n, 0) == 0 {
				rt.Fatalf("%s kernel, %d bytes: no group took the non-temporal path", kernelNames[k], n)
			}
		})
		t.Logf("%s: %d non-temporal groups over %d lengths from %d bytes up, none over %d lengths below", kernelNames[k], groups, len(above), ntFrom, len(below))
	})
}

// TestKernelChecksum: the Checksum of each kernel (internal/crc32c's of
// the same name) agrees with hash/crc32 on random data, lengths and
// alignments.
func TestKernelChecksum(t *testing.T) {
	forEachKernel(t, func(t *testing.T, k int) {
		rapid.Check(t, func(t *rapid.T) {
			n := rapid.IntRange(0, 100000).Draw(t, "len")
			off := rapid.IntRange(0, 63).Draw(t, "offset")
			buf := make([]byte, off+n)
			fillFrom(buf, rapid.Uint64().Draw(t, "seed")|1)
			b := buf[off:]
			if got, want := crcImpls[k].Checksum(b), crc32.Checksum(b, Table()); got != want {
				t.Fatalf("%s checksum of %d bytes at offset %d = %#x, hash/crc32 says %#x", kernelNames[k], n, off, got, want)
			}
		})
	})
}

func BenchmarkFillRingAVX2(b *testing.B) {
	if !crc32c.AVX2.Available() {
		b.Skip("no AVX2 with VPCLMULQDQ")
	}
	benchRing(b, func(dst []byte, seq uint64) uint32 { return fillWith(kernelAVX2, nil, dst, seq) })
}

func BenchmarkChecksum8MiBAVX2(b *testing.B) {
	if !crc32c.AVX2.Available() {
		b.Skip("no AVX2 with VPCLMULQDQ")
	}
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		crc32c.AVX2.Checksum(buf)
	}
}

func BenchmarkFillRingScalar(b *testing.B) {
	if !cpu.X86.HasSSE42 || !cpu.X86.HasBMI2 {
		b.Skip("no SSE4.2 and BMI2")
	}
	benchRing(b, func(dst []byte, seq uint64) uint32 { return fillWith(kernelScalar, nil, dst, seq) })
}

func BenchmarkChecksum8MiBScalar(b *testing.B) {
	if !crc32c.SSE42.Available() {
		b.Skip("no SSE4.2")
	}
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		crc32c.SSE42.Checksum(buf)
	}
}
