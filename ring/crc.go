package ring

import "github.com/shmpc/shmpc/internal/crc32c"

// CRC returns the CRC32C (Castagnoli) of b, the checksum a ring's descriptors carry. It
// is the project's one CRC32C, internal/crc32c: VPCLMULQDQ folding or CRC32 instruction
// kernels where the CPU has them, hash/crc32 elsewhere; the same value as
// crc32.Checksum with the Castagnoli table.
func CRC(b []byte) uint32 { return crc32c.Checksum(b) }

// UpdateCRC returns the CRC32C of the bytes whose checksum is crc followed by b, for a
// producer that generates an item in pieces (start from 0).
func UpdateCRC(crc uint32, b []byte) uint32 { return crc32c.Update(crc, b) }

// The piece sizes of the one-pass copy and checksum, chosen with BenchmarkCopyCRC on
// 8 MiB (2-core AMD EPYC, Go 1.26, medians of 8 interleaved runs, hash/crc32):
//
//   - copyChunkSrc (the producer's copy before internal/crc32c.CopyUpdate, and
//     CopyUpdate's own fallback on CPUs without its fused kernel: private source in
//     cache, shared slot cold): 1 MiB pieces run at 11.6 GiB/s, copy then
//     crc32.Update at 11.0, pieces of 4 to 64 KiB at about 8; with both sides cold
//     8.2, 5.7 and 6.0 to 7.2. From 1 MiB up, Go's memmove on amd64 writes with
//     non-temporal stores, so the cold slot is not read for ownership first, and the
//     piece of src is still in L2 for the checksum.
//   - copyChunkDst (copyCRCDst, consumer: shared slot cold, private copy in cache; now
//     internal/crc32c's CopyUpdateDst fallback, its fused kernel elsewhere):
//     4 KiB pieces run at 7.4 to 10 GiB/s, copy then crc32.Update at 3.7 to 4.0, 1 MiB
//     pieces at 3.7: here the non-temporal stores push the copy out of the cache just
//     before the checksum reads it, while a 4 KiB piece is still in L1.
//
// With everything in cache all variants run at about 10 GiB/s.
//
// Re-measured with internal/crc32c (its AVX2 kernel; 2-core AMD EPYC Zen 3 VM, medians
// of 5 runs interleaved with the hash/crc32 build, pieces of 4, 16, 64, 256 KiB and
// 1 MiB), the choice stands: producer 1 MiB 8.4 GiB/s (hash/crc32 8.2), 4 to 256 KiB
// 5.7 to 6.2, copy then UpdateCRC 8.5; consumer 4 to 64 KiB 6.3 (hash/crc32 6.8 to
// 6.9), 256 KiB 5.7, 1 MiB 5.3, copy then UpdateCRC 5.9 (hash/crc32 3.8). The
// checksum reads each piece from cache, where this CPU runs the kernel no faster than
// hash/crc32 (about 17 GiB/s: its YMM VPCLMULQDQ, like CRC32, does 8 bytes a cycle);
// the kernels gain where data comes from memory (5.4 to 11.7 GiB/s on a cold 8 MiB
// slot, BenchmarkChecksumCold in internal/crc32c), as for the whole-item checksums.
const (
	copyChunkSrc = 1 << 20
	copyChunkDst = 4 << 10
)

// CopyCRC copies src into dst, as copy does (min(len(dst), len(src)) bytes), and returns
// the CRC32C of the bytes copied, in one pass over memory: internal/crc32c.CopyUpdate,
// which on CPUs with AVX2 and VPCLMULQDQ folds the checksum from the registers it
// copies through (with non-temporal stores into dst from 64 KiB on), and elsewhere
// copies 1 MiB pieces and checksums each piece of src right after, while it is still
// in cache, instead of reading src twice from memory.
//
// The checksum is computed from src, never read back from dst: a producer copying its
// private data into a shared slot gets the checksum of the source (docs/protocol.md,
// "CRC32C"), which a
// neighbour scribbling on the slot cannot change. CopyCRC is safe for concurrent use.
func CopyCRC(dst, src []byte) uint32 {
	n := min(len(dst), len(src))
	return crc32c.CopyUpdate(0, dst, src[:n])
}

// CopyUpdateCRC copies src into dst, as copy does (min(len(dst), len(src)) bytes), and
// returns the CRC32C of the bytes whose checksum is crc followed by the bytes copied: the
// running checksum of an item assembled in a slot from several pieces (a header, then a
// body, ...), each copied and checksummed in one pass as CopyCRC does, so the slot is
// never read back. Start from 0 and pass the result to CommitCRC.
func CopyUpdateCRC(crc uint32, dst, src []byte) uint32 {
	n := min(len(dst), len(src))
	return crc32c.CopyUpdate(crc, dst, src[:n])
}

// copyCRCDst is the consumer's copying mode: it copies src (a shared slot) into dst and
// returns the checksum of what it wrote into dst, the private copy
// (internal/crc32c.CopyUpdateDst: one pass with the fused kernel), so the checksum
// describes exactly the bytes handed out, whatever a writer does to the slot meanwhile.
func copyCRCDst(dst, src []byte) uint32 {
	n := min(len(dst), len(src))
	return crc32c.CopyUpdateDst(0, dst, src[:n])
}
