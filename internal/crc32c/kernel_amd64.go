//go:build !purego

package crc32c

import (
	"hash/crc32"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// What the kernels need. The folding kernels: PCLMULQDQ and VPCLMULQDQ
// for the carry-less multiplications, AVX-512 Foundation (ZMM registers,
// VPTERNLOGQ, the 128-bit lane shuffles) or AVX2 (YMM registers), and
// SSE4.2 for the final CRC32 instructions; the scalar kernel SSE4.2 alone.
// cpu.X86 reports AVX-512 (and AVX2) only when the operating system saves
// the registers, and applies GODEBUG's cpu.* options; it reports VPCLMULQDQ
// only with AVX-512, so the AVX2 kernel asks CPUID itself (no GODEBUG
// option hides that bit; cpu.avx2=off does turn the AVX2 kernel off).

var hasVPCLMULQDQ = HasVPCLMULQDQ()

var best = detect()

func detect() Impl {
	for _, i := range [...]Impl{AVX512, AVX2, SSE42} {
		if implAvailable(i) {
			return i
		}
	}
	return Generic
}

func implAvailable(i Impl) bool {
	x := &cpu.X86
	switch i {
	case AVX512:
		return x.HasSSE42 && x.HasPCLMULQDQ && x.HasAVX512F && x.HasAVX512VPCLMULQDQ
	case AVX2:
		return x.HasSSE42 && x.HasPCLMULQDQ && x.HasAVX2 && hasVPCLMULQDQ
	case SSE42:
		return x.HasSSE42
	}
	return false
}

// HasVPCLMULQDQ reports the VPCLMULQDQ bit of CPUID (leaf 7, ECX bit 10),
// which golang.org/x/sys/cpu reports only on CPUs with AVX-512
// (HasAVX512VPCLMULQDQ). It says nothing of whether the operating system
// saves the YMM or ZMM registers.
func HasVPCLMULQDQ() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	_, _, ecx, _ := cpuid(7, 0)
	return ecx&(1<<10) != 0
}

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// minFold is the shortest input the folding kernels take: below it
// hash/crc32's three CRC32 chains are as fast (BenchmarkChecksumShort).
const minFold = 256

// crcBlocks returns the CRC32C state (not inverted) after n bytes at p (n a
// multiple of 256, at least 256), starting from state: four 64-byte
// accumulators on ZMM registers (AVX-512).
//
//go:noescape
func crcBlocks(state uint32, p *byte, n int, c *FoldConsts) uint32

// crcBlocks2 is crcBlocks on YMM registers (AVX2), for n a multiple of 128,
// at least 128.
//
//go:noescape
func crcBlocks2(state uint32, p *byte, n int, c *FoldConsts) uint32

// update is Update with kernel i (which the CPU must have). The kernels
// take whole blocks; the bytes after the last one go to hash/crc32.
func update(i Impl, crc uint32, b []byte) uint32 {
	n := 0
	switch {
	case i == AVX512 && len(b) >= minFold:
		n = len(b) &^ 255
		crc = ^crcBlocks(^crc, &b[0], n, consts)
	case i == AVX2 && len(b) >= minFold:
		n = len(b) &^ 127
		crc = ^crcBlocks2(^crc, &b[0], n, consts)
	case i == SSE42 && len(b) >= 3*ChainBytes:
		state := ^crc
		var out [3]uint32
		for ; n+3*ChainBytes <= len(b); n += 3 * ChainBytes {
			crc3(state, &b[n], &out)
			state = Combine3(&out)
		}
		crc = ^state
	}
	return crc32.Update(crc, table, b[n:])
}

// copyBlocks2 copies the n bytes at src to dst (n a multiple of 128, at
// least 128; the two must not overlap) and returns the CRC32C state (not
// inverted) after them, starting from state: crcBlocks2 folding the
// registers it loaded and stored. With nt the stores are non-temporal
// (VMOVNTDQ, then SFENCE) and dst must be 32-byte aligned. AVX2 and
// VPCLMULQDQ.
//
//go:noescape
func copyBlocks2(state uint32, dst, src *byte, n int, c *FoldConsts, nt bool) uint32

// fusedCopy reports whether CopyUpdate with kernel i runs the AVX2 copy
// kernel (for inputs of minFold bytes or more).
func fusedCopy(i Impl) bool { return (i == AVX2 || i == AVX512) && implAvailable(AVX2) }

// copyUpdate is CopyUpdate with kernel i (which the CPU must have), for
// len(dst) == len(src). The AVX2 copy kernel takes whole 128-byte blocks;
// before them, for a non-temporal copy, the bytes up to dst's next 32-byte
// boundary, and after them the tail, go through copy and hash/crc32.
func copyUpdate(i Impl, crc uint32, dst, src []byte, sumDst bool) uint32 {
	if !fusedCopy(i) || len(src) < minFold || overlap(dst, src) {
		return copyPieces(i, crc, dst, src, sumDst)
	}
	// The head and tail the kernel leaves are copied in Go and checksummed
	// from dst with sumDst (what was written), else from src.
	sum := src
	if sumDst {
		sum = dst
	}
	h := 0
	nt := len(src) >= minNT
	if nt {
		h = int(-uintptr(unsafe.Pointer(&dst[0])) & 31)
		copy(dst[:h], src[:h])
		crc = crc32.Update(crc, table, sum[:h])
	}
	n := (len(src) - h) &^ 127
	crc = ^copyBlocks2(^crc, &dst[h], &src[h], n, consts, nt)
	h += n
	copy(dst[h:], src[h:])
	return crc32.Update(crc, table, sum[h:])
}
