package ring

import "hash/crc32"

// castagnoli is the CRC32C table; hash/crc32 uses the SSE4.2 / ARMv8 CRC instructions
// for it where the CPU has them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32C (Castagnoli) of b, the checksum a ring's descriptors carry.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// UpdateCRC returns the CRC32C of the bytes whose checksum is crc followed by b, for a
// producer that generates an item in pieces (start from 0).
func UpdateCRC(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// The piece sizes of the one-pass copy and checksum, chosen with BenchmarkCopyCRC on
// 8 MiB (2-core AMD EPYC, Go 1.26, medians of 8 interleaved runs):
//
//   - copyChunkSrc (CopyCRC, producer: private source in cache, shared slot cold):
//     1 MiB pieces run at 11.6 GiB/s, copy then crc32.Update at 11.0, pieces of 4 to
//     64 KiB at about 8; with both sides cold 8.2, 5.7 and 6.0 to 7.2. From 1 MiB up,
//     Go's memmove on amd64 writes with non-temporal stores, so the cold slot is not
//     read for ownership first, and the piece of src is still in L2 for the checksum.
//   - copyChunkDst (copyCRCDst, consumer: shared slot cold, private copy in cache):
//     4 KiB pieces run at 7.4 to 10 GiB/s, copy then crc32.Update at 3.7 to 4.0, 1 MiB
//     pieces at 3.7: here the non-temporal stores push the copy out of the cache just
//     before the checksum reads it, while a 4 KiB piece is still in L1.
//
// With everything in cache all variants run at about 10 GiB/s.
const (
	copyChunkSrc = 1 << 20
	copyChunkDst = 4 << 10
)

// CopyCRC copies src into dst, as copy does (min(len(dst), len(src)) bytes), and returns
// the CRC32C of the bytes copied, in one pass over memory: it copies 1 MiB pieces and
// checksums each piece of src right after, while it is still in cache, instead of
// reading src twice from memory.
//
// The checksum is computed from src, never read back from dst: a producer copying its
// private data into a shared slot gets the checksum of the source (contract 6), which a
// neighbour scribbling on the slot cannot change. CopyCRC is safe for concurrent use.
func CopyCRC(dst, src []byte) uint32 { return copyCRC(dst, src, copyChunkSrc, false) }

// copyCRCDst is the consumer's copying mode: it copies src (a shared slot) into dst in
// 4 KiB pieces and checksums each piece of dst, the private copy, so the checksum
// describes exactly the bytes handed out.
func copyCRCDst(dst, src []byte) uint32 { return copyCRC(dst, src, copyChunkDst, true) }

// copyCRC copies src to dst in pieces of chunk bytes and checksums each piece right
// after copying it, from dst when sumDst is set, else from src.
func copyCRC(dst, src []byte, chunk int, sumDst bool) uint32 {
	n := min(len(dst), len(src))
	var crc uint32
	for off := 0; off < n; off += chunk {
		end := min(off+chunk, n)
		copy(dst[off:end], src[off:end])
		if sumDst {
			crc = crc32.Update(crc, castagnoli, dst[off:end])
		} else {
			crc = crc32.Update(crc, castagnoli, src[off:end])
		}
	}
	return crc
}
