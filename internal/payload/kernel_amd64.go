//go:build !purego

package payload

import (
	"golang.org/x/sys/cpu"
	"sync/atomic"

	"github.com/shmpc/shmpc/internal/crc32c"
)

// The fused kernels are the Fill side of internal/crc32c's: they fold the
// generated data with its constants (crc32c.Consts) and need what its
// kernels of the same name need: genCRC8 what crc32c.AVX512 needs, genCRC4
// what crc32c.AVX2 needs, and genCRC3 SSE4.2 (crc32c.SSE42) with BMI2
// (SHLX, SHRX). Fill takes the first of them this CPU can run, which is
// also the kernel Checksum (crc32c.Checksum) uses, except on the rare CPUs
// with SSE4.2 but without BMI2 (before Haswell and Excavator), where Fill
// takes the portable path.
const (
	kernelNone = iota
	kernelScalar
	kernelAVX2
	kernelAVX512
)

var kernel = detectKernel()

var haveKernel = kernel != kernelNone

func detectKernel() int {
	switch {
	case crc32c.AVX512.Available():
		return kernelAVX512
	case crc32c.AVX2.Available():
		return kernelAVX2
	case crc32c.SSE42.Available() && cpu.X86.HasBMI2:
		return kernelScalar
	}
	return kernelNone
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

// The fused kernels' chunk is crc32c's chain: the scalar kernel's chains
// are joined with crc32c.Combine3, and the Chunk constants fold by it.
var _ = [1]struct{}{}[ChunkBytes-crc32c.ChainBytes]

// genCRC8 writes nchunks (2 to 8) whole chunks at dst (contiguous),
// continuing the xorshift64 streams whose states are seeds[0..nchunks), and
// returns the CRC32C state (not inverted) after them, starting from state.
// nt writes with non-temporal stores when nchunks is 8 and dst is 64-byte
// aligned. The bytes written are never read back.
//
//go:noescape
func genCRC8(dst *byte, seeds *[8]uint64, nchunks int, c *crc32c.FoldConsts, state uint32, nt bool) uint32

// genCRC4 is genCRC8 on YMM registers, for 2 to 4 chunks (AVX2 and
// VPCLMULQDQ).
//
//go:noescape
func genCRC4(dst *byte, seeds *[8]uint64, nchunks int, c *crc32c.FoldConsts, state uint32, nt bool) uint32

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

// ntFills counts the fills that asked the kernels for non-temporal stores:
// one atomic add per item of 64 KiB or more, for the tests to prove that
// the decision reaches the kernels.
var ntFills atomic.Uint64

// fillWithNT is fillWith, with non-temporal stores for whole groups if nt.
func fillWithNT(k int, g *Generator, dst []byte, seq uint64, nt bool) uint32 {
	if nt {
		ntFills.Add(1)
	}
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
			state = crc32c.Combine3(&out)
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
			state = genCRC8(&dst[0], &seeds, n, crc32c.Consts(), state, nt)
		} else {
			state = genCRC4(&dst[0], &seeds, n, crc32c.Consts(), state, nt)
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
		crc = crc32c.Update(crc, buf)
		copy(dst, buf)
		dst = dst[n:]
		c++
	}
	return crc
}
