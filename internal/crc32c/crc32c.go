// Package crc32c is the project's one CRC32C (Castagnoli): the checksum of
// the ring's descriptors (ring.CRC, ring.CopyCRC), of the producer's
// commits, of the consumer's verification and of internal/payload.
//
// Checksum and Update compute what hash/crc32 computes with the Castagnoli
// table, with the fastest kernel this CPU can run (Kernel names it):
//
//   - "avx512": carry-less multiplication (VPCLMULQDQ) on ZMM registers,
//     four 64-byte accumulators folded over 256-byte blocks (AVX-512F and
//     VPCLMULQDQ);
//   - "avx2": the same method on YMM registers, four 32-byte accumulators
//     over 128-byte blocks (AVX2 and VPCLMULQDQ: AMD Zen 3, Intel Alder
//     Lake and others without AVX-512);
//   - "sse42": three CRC32 instruction chains over the three 8 KiB thirds
//     of each 24 KiB block, joined with a table (amd64 CPUs with SSE4.2 but
//     without VPCLMULQDQ);
//   - "hash/crc32": the standard library, everywhere else (it uses the
//     CRC32 instructions of amd64 and arm64 where the CPU has them) and
//     with the purego build tag.
//
// The folding method is that of Intel's "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ"; the constants it needs (FoldConsts, on
// amd64) are exported for internal/payload's fused generate-and-checksum
// kernels, which fold the same way. Every kernel leaves the bytes after its
// last whole block, and inputs shorter than its threshold, to hash/crc32.
//
// Measured on a 2-core AMD EPYC (Zen 3) VM, one core, medians of 5, in
// GiB/s: in cache (BenchmarkChecksum, 64 KiB to 8 MiB) avx2 16.8 to 17.7,
// sse42 17.3 to 17.9, hash/crc32 10.2 to 16.3 (17.1 at 4 KiB, where avx2
// runs at 15.6); from memory (BenchmarkChecksumCold, 4 KiB to 8 MiB) avx2
// 10.0 to 11.5, sse42 9.5 to 12.2 (5.4 at 4 KiB: hash/crc32's), hash/crc32
// 4.8 to 5.7. On Zen 3 the YMM VPCLMULQDQ does 8 bytes a cycle, as the
// CRC32 instruction does, so the AVX2 kernel is no faster in cache than the
// scalar one; it is preferred for its gain on short inputs from memory, a
// slot just written by another core. The folding kernels run faster where
// the carry-less multiplier is wider (AVX-512 on Zen 4: about 52 GiB/s in
// cache, as internal/payload measured).
//
// CopyUpdate copies and checksums in one pass over memory where the CPU
// has AVX2 and VPCLMULQDQ (the "avx2" and "avx512" kernels: both run the
// AVX2 copy kernel, which loads 128-byte blocks of the source, stores them
// to the destination, with non-temporal stores from 64 KiB on, and folds
// the CRC from the loaded registers); everywhere else it copies and then
// checksums pieces of 1 MiB, each piece of the source read again from
// cache. BenchmarkCopyUpdate (source in cache, destination cold: eight
// 8 MiB destinations in turn; same machine, medians of 5) measured the
// fused kernel at 15.0, 13.1 and 10.3 GiB/s for 64 KiB, 1 MiB and 8 MiB
// copies, copy then Update in pieces at 6.8, 9.9 and 7.7.
//
// All functions are safe for concurrent use; none allocates.
package crc32c

import (
	"hash/crc32"
	"strconv"
	"unsafe"
)

// table is hash/crc32's Castagnoli table: MakeTable returns the package's
// own instance, for which Update uses the CPU's CRC instructions.
var table = crc32.MakeTable(crc32.Castagnoli)

// Table returns the hash/crc32 table of CRC32C, for callers that need a
// hash.Hash32 (crc32.New) or a reference to compare with.
func Table() *crc32.Table { return table }

// Impl is one of the package's CRC32C kernels.
type Impl uint8

// The kernels, slowest first. Only Generic is available everywhere.
const (
	Generic Impl = iota // hash/crc32
	SSE42               // three CRC32 chains per 24 KiB (amd64)
	AVX2                // VPCLMULQDQ folding on YMM registers (amd64)
	AVX512              // VPCLMULQDQ folding on ZMM registers (amd64)
)

// String returns the kernel's name: "hash/crc32", "sse42", "avx2" or
// "avx512".
func (i Impl) String() string {
	switch i {
	case Generic:
		return "hash/crc32"
	case SSE42:
		return "sse42"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return "Impl(" + strconv.Itoa(int(i)) + ")"
}

// Available reports whether this build and CPU can run the kernel (as
// golang.org/x/sys/cpu reports the CPU, GODEBUG's cpu.* options included).
func (i Impl) Available() bool { return i == Generic || implAvailable(i) }

// Update is the package's Update with kernel i, which must be Available
// (else it panics). It exists for tests and benchmarks of each kernel.
func (i Impl) Update(crc uint32, b []byte) uint32 {
	mustHave(i)
	return update(i, crc, b)
}

// mustHave panics unless kernel i is Available.
func mustHave(i Impl) {
	if !i.Available() {
		panic("crc32c: kernel " + i.String() + " is not available on this CPU")
	}
}

// Checksum is the package's Checksum with kernel i, which must be
// Available (else it panics).
func (i Impl) Checksum(b []byte) uint32 { return i.Update(0, b) }

// Best returns the kernel Checksum and Update use: the fastest this CPU
// can run.
func Best() Impl { return best }

// Kernel names the kernel Checksum and Update use on this machine:
// "avx512", "avx2", "sse42" or "hash/crc32".
func Kernel() string { return best.String() }

// Checksum returns the CRC32C of b, as crc32.Checksum(b,
// crc32.MakeTable(crc32.Castagnoli)) computes it.
func Checksum(b []byte) uint32 { return update(best, 0, b) }

// Update returns the CRC32C of the bytes whose CRC32C is crc followed by b,
// as crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), b) computes it
// (start from 0).
func Update(crc uint32, b []byte) uint32 { return update(best, crc, b) }

// CopyUpdate copies src into dst, which must be at least as long (else it
// panics), and returns Update(crc, src): the CRC32C of the bytes whose
// CRC32C is crc followed by src. The checksum is computed from src as it
// is loaded, never read back from dst; bytes of dst beyond len(src) are
// left alone. Where the CPU allows (see the package documentation) it
// reads src once; copies of 64 KiB or more are written with non-temporal
// stores, which do not pull dst into this core's cache: the copy is meant
// for a slot another core reads next. dst and src may overlap (then the
// checksum comes first and the copy after it, in two passes).
func CopyUpdate(crc uint32, dst, src []byte) uint32 {
	return checkedCopy("CopyUpdate", best, crc, dst, src, false)
}

// CopyUpdateDst is CopyUpdate for a copy whose source another process may
// be writing meanwhile (a shared slot copied into a private buffer): it
// returns Update(crc, what it wrote into dst), the checksum of the copy
// whatever happens to src during the call. The fused kernel checksums the
// very registers it stores; elsewhere each piece is copied, then read back
// from dst while it is in cache.
func CopyUpdateDst(crc uint32, dst, src []byte) uint32 {
	return checkedCopy("CopyUpdateDst", best, crc, dst, src, true)
}

// CopyUpdate is the package's CopyUpdate with kernel i, which must be
// Available (else it panics): the fused copy kernel with AVX2 and AVX512
// (both run the AVX2 copy kernel), copy then i.Update in pieces with the
// others. It exists for tests and benchmarks of each kernel.
func (i Impl) CopyUpdate(crc uint32, dst, src []byte) uint32 {
	mustHave(i)
	return checkedCopy("CopyUpdate", i, crc, dst, src, false)
}

// CopyUpdateDst is the package's CopyUpdateDst with kernel i, which must
// be Available (else it panics); for tests and benchmarks of each kernel.
func (i Impl) CopyUpdateDst(crc uint32, dst, src []byte) uint32 {
	mustHave(i)
	return checkedCopy("CopyUpdateDst", i, crc, dst, src, true)
}

// checkedCopy is the copy functions' common part: dst must hold src.
func checkedCopy(op string, i Impl, crc uint32, dst, src []byte, sumDst bool) uint32 {
	if len(dst) < len(src) {
		panic("crc32c: " + op + ": dst shorter than src")
	}
	return copyUpdate(i, crc, dst[:len(src)], src, sumDst)
}

// minNT is the shortest copy the fused copy kernel writes with
// non-temporal stores.
const minNT = 64 << 10

// copyPiece is the piece length of the portable CopyUpdate: small enough
// that a piece of src is still in cache when Update reads it right after
// copy (ring.CopyCRC chose 1 MiB with its benchmarks).
const copyPiece = 1 << 20

// copyPieceDst is the piece length of the portable CopyUpdateDst, which
// reads each piece back from dst: small enough to be still in L1 (the
// consumer's copy mode measured 4 KiB pieces at about twice 1 MiB ones,
// whose copy, written with non-temporal stores by Go's memmove from 1 MiB
// on, has left the cache when the checksum reads it).
const copyPieceDst = 4 << 10

// copyPieces is the portable CopyUpdate (len(dst) == len(src)): copy then
// Update with kernel i, a piece at a time, reading src again or, with
// sumDst, dst (the copy is then what the checksum describes, whatever a
// writer did to src in between); if dst and src overlap, the whole of src
// is checksummed before the copy changes it, or dst after it.
func copyPieces(i Impl, crc uint32, dst, src []byte, sumDst bool) uint32 {
	if overlap(dst, src) {
		if sumDst {
			copy(dst, src)
			return update(i, crc, dst)
		}
		crc = update(i, crc, src)
		copy(dst, src)
		return crc
	}
	sum, piece := src, copyPiece
	if sumDst {
		sum, piece = dst, copyPieceDst
	}
	for off := 0; off < len(src); off += piece {
		end := min(off+piece, len(src))
		copy(dst[off:end], src[off:end])
		crc = update(i, crc, sum[off:end])
	}
	return crc
}

// overlap reports whether a and b (of the same length) share memory.
func overlap(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}
