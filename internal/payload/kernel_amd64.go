//go:build !purego

package payload

import (
	"hash/crc32"

	"golang.org/x/sys/cpu"
)

// The assembly kernels and what they need. The scalar kernel needs SSE4.2
// (CRC32) and BMI2 (SHLX, SHRX). AVX-512 Foundation gives the
// ZMM registers, mask registers, VPTERNLOGQ and the 128-bit lane shuffles;
// VPCLMULQDQ the carry-less multiplication of whole YMM/ZMM registers;
// SSE4.2 the final CRC32 instructions. cpu.X86 reports AVX-512 (and AVX2)
// only when the operating system saves the registers; it reports
// VPCLMULQDQ only with AVX-512, so the AVX2 kernel asks CPUID itself.
const (
	kernelNone = iota
	kernelScalar
	kernelAVX2
	kernelAVX512
)

var kernel = detectKernel()

var haveKernel = kernel != kernelNone

func detectKernel() int {
	if !cpu.X86.HasSSE42 {
		return kernelNone
	}
	if cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPCLMULQDQ {
		return kernelAVX512
	}
	if cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX2 && hasVPCLMULQDQ() {
		return kernelAVX2
	}
	// Intel before Ice Lake, AMD before Zen 3: CRC32 instructions and
	// BMI2's shifts (Haswell, Zen 1 and later).
	if cpu.X86.HasBMI2 {
		return kernelScalar
	}
	return kernelNone
}

// hasVPCLMULQDQ reads CPUID leaf 7: ECX bit 10 is VPCLMULQDQ.
func hasVPCLMULQDQ() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	_, _, ecx, _ := cpuid(7, 0)
	return ecx&(1<<10) != 0
}

func kernelName() string {
	switch kernel {
	case kernelAVX512:
		return "avx512"
	case kernelAVX2:
		return "avx2"
	case kernelScalar:
		return "sse42"
	}
	return "go"
}

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// kernelMinChecksum is the shortest buffer Checksum hands to the kernel.
const kernelMinChecksum = 256

// genCRC8 writes nchunks (2 to 8) whole chunks at dst (contiguous),
// continuing the xorshift64 streams whose states are seeds[0..nchunks), and
// returns the CRC32C state (not inverted) after them, starting from state.
// nt writes with non-temporal stores when nchunks is 8 and dst is 64-byte
// aligned. The bytes written are never read back.
//
//go:noescape
func genCRC8(dst *byte, seeds *[8]uint64, nchunks int, c *foldConsts, state uint32, nt bool) uint32

// genCRC4 is genCRC8 on YMM registers, for 2 to 4 chunks (AVX2 and
// VPCLMULQDQ).
//
//go:noescape
func genCRC4(dst *byte, seeds *[8]uint64, nchunks int, c *foldConsts, state uint32, nt bool) uint32

// crcBlocks returns the CRC32C state after n bytes at p (n a multiple of
// 256, at least 256), starting from state (not inverted).
//
//go:noescape
func crcBlocks(state uint32, p *byte, n int, c *foldConsts) uint32

// crcBlocks2 is crcBlocks on YMM registers, for n a multiple of 128.
//
//go:noescape
func crcBlocks2(state uint32, p *byte, n int, c *foldConsts) uint32

// ntThreshold is the item length from which fillKernel writes its whole
// groups of eight chunks with non-temporal stores (0: never). Fill's
// destination is a slot that another core reads next: stores that bypass
// the cache neither read the old line for ownership nor take it away from
// the consumer's cache, which lifted a two-process run of 64 KiB items from
// 5.9 to 12.8 GiB/s and of 8 MiB items from 12.4 to 14.3 GiB/s (medians of
// 5, 2-core EPYC, huge pages). Partial groups use ordinary masked stores.
var ntThreshold = 8 * ChunkBytes

// fillKernel is Fill with the assembly kernel, for every group of two to
// eight (AVX2: four) whole chunks. The kernel's cost is per group whatever the number of
// chunks in it, so a lone chunk at the end (whole or not; all of a small
// item) is cheaper on the portable path, with g's buffer (nil: one from the
// pool).
func fillKernel(g *Generator, dst []byte, seq uint64) uint32 { return fillWith(kernel, g, dst, seq) }

// fillKernelCached is fillKernel with ordinary stores only.
func fillKernelCached(g *Generator, dst []byte, seq uint64) uint32 {
	return fillWithNT(kernel, g, dst, seq, false)
}

// fillWith is fillKernel with kernel k (which the CPU must have).
func fillWith(k int, g *Generator, dst []byte, seq uint64) uint32 {
	return fillWithNT(k, g, dst, seq, useNT(len(dst)))
}

// useNT reports whether fillWith writes an item of n bytes with
// non-temporal stores (its whole groups; see ntThreshold).
func useNT(n int) bool { return ntThreshold > 0 && n >= ntThreshold }

// fillWithNT is fillWith, with non-temporal stores for whole groups if nt.
func fillWithNT(k int, g *Generator, dst []byte, seq uint64, nt bool) uint32 {
	state := ^uint32(0)
	group := 8
	if k == kernelAVX2 {
		group = 4
	}
	var seeds [8]uint64
	c := uint64(0)
	if k == kernelScalar {
		// Whole groups of three chunks; the rest on the portable path.
		var seeds3 [3]uint64
		var out [3]uint32
		for len(dst) >= 3*ChunkBytes {
			seeds3 = [3]uint64{ChunkSeed(seq, c), ChunkSeed(seq, c+1), ChunkSeed(seq, c+2)}
			genCRC3(&dst[0], &seeds3, state, nt, &out)
			state = combine3(&out)
			dst = dst[3*ChunkBytes:]
			c += 3
		}
	}
	for k != kernelScalar && len(dst) >= 2*ChunkBytes {
		n := min(len(dst)/ChunkBytes, group)
		for k := range n {
			seeds[k] = ChunkSeed(seq, c+uint64(k))
		}
		if k == kernelAVX512 {
			state = genCRC8(&dst[0], &seeds, n, consts, state, nt)
		} else {
			state = genCRC4(&dst[0], &seeds, n, consts, state, nt)
		}
		dst = dst[n*ChunkBytes:]
		c += uint64(n)
	}
	if len(dst) == 0 {
		return ^state
	}
	if g == nil {
		g = pool.Get().(*Generator)
		defer pool.Put(g)
	}
	crc := ^state
	for len(dst) > 0 {
		n := min(len(dst), ChunkBytes)
		buf := g.buf[:n]
		fillChunk(buf, seq, c)
		crc = crc32.Update(crc, castagnoli, buf)
		copy(dst, buf)
		dst = dst[n:]
		c++
	}
	return crc
}

// checksumKernel is Checksum with the kernel (len(b) >= 256).
func checksumKernel(b []byte) uint32 { return checksumWith(kernel, b) }

// checksumWith is checksumKernel with kernel k (which the CPU must have).
func checksumWith(k int, b []byte) uint32 {
	var n int
	var state uint32
	if k == kernelScalar {
		// Blocks of 24 KiB, three chains each; the rest with hash/crc32.
		state = ^uint32(0)
		var out [3]uint32
		for ; n+3*ChunkBytes <= len(b); n += 3 * ChunkBytes {
			crc3(state, &b[n], &out)
			state = combine3(&out)
		}
		return crc32.Update(^state, castagnoli, b[n:])
	}
	if k == kernelAVX512 {
		n = len(b) &^ 255
		state = crcBlocks(^uint32(0), &b[0], n, consts)
	} else {
		n = len(b) &^ 127
		state = crcBlocks2(^uint32(0), &b[0], n, consts)
	}
	return crc32.Update(^state, castagnoli, b[n:])
}
