// Package payload generates and checks the demo and benchmark workload,
// the payload of -count and -bytes (README, "Objects of one ring"): item seq is a stream of
// little-endian 64-bit words; word j is output number (j mod 1024)+1 of
// xorshift64 (shifts 13, 7, 17) seeded with splitmix64((seq<<32) xor (j div
// 1024)), a seed of 0 replaced by 0x9E3779B97F4A7C15. The stream restarts
// every 8 KiB (a chunk), so several chunks can be generated at once. An item
// whose length is not a multiple of 8 is the prefix of that byte stream.
//
// The external C++ baseline of BENCHMARKS.md uses the same definition, so both
// implementations do identical work.
//
// # The fused kernel
//
// Fill is the producer's hot path: it writes an item into a shared slot and
// returns the CRC32C of what it wrote. The checksum must describe the
// generated data, never the slot read back (checksum the source, not the slot), so a
// process that scribbles on the slot between the write and the commit is
// caught by the consumer.
//
// On amd64 with AVX-512 and VPCLMULQDQ, Fill runs a kernel in assembly that
// never reads the destination: it steps eight chunks' xorshift streams at
// once, one per 64-bit lane of a ZMM register, transposes each 8x8 block of
// words in registers so that every register holds 64 consecutive bytes of
// one chunk, stores those rows into the slot, and folds the same registers
// into eight per-chunk CRC accumulators with carry-less multiplication (the
// folding method of Intel's "Fast CRC Computation for Generic Polynomials
// Using PCLMULQDQ"). At the end of each group of eight chunks the
// accumulators are folded into one over the chunk distance and reduced to
// 32 bits with two CRC32 instructions. Generation, checksum and store are
// one pass over registers; the only memory traffic is the store. Items of
// 64 KiB and more are stored with non-temporal stores: the slot is read
// next by another core, and bypassing the cache spares the read for
// ownership and the tug of war over the consumer's cached lines (this
// doubled a two-process run of 64 KiB items; FillCached is Fill without
// them, for a buffer read back at once). The kernel's cost is per group of
// up to eight chunks, however many of them exist, so it takes groups of at
// least two whole chunks: a lone last chunk, whole or not (all of an item
// under 16 KiB), takes the portable path below.
//
// CPUs with VPCLMULQDQ but without AVX-512 (AMD Zen 3, for one) run the
// same kernel on YMM registers: four chunks at a time, 32-byte rows.
//
// amd64 CPUs without VPCLMULQDQ but with SSE4.2 and BMI2 (Intel Haswell to
// Cascade Lake, AMD Zen 1 and 2) run a scalar kernel: three chunks at a
// time, each its own xorshift64 stream in a general register (BMI2's
// three-operand shifts) and its own CRC32 instruction chain, stored straight
// into dst; the three chains are joined with a table that shifts a CRC
// register over one chunk of zeros (internal/crc32c's Combine3).
//
// Everywhere else (other CPUs, other architectures, the purego build tag)
// a portable Go version generates three chunks at a time into a private
// 24 KiB buffer, checksums it there with crc32c while it is in the L1
// cache, and copies it out. Both produce identical bytes and checksums; the
// tests compare them on random sequence numbers and lengths, and the Go
// version against the slow definition (Word) and against the C++ baseline.
//
// Checksum is internal/crc32c's CRC32C of a buffer, the project's one: the
// same folding method with the same constants (crc32c.Consts, which the
// fused kernels take as an argument) over four 64-byte or 32-byte
// accumulators, three CRC32 chains per 24 KiB block on the scalar CPUs,
// hash/crc32 elsewhere.
//
// Measured on a 2-core AMD EPYC (Zen 4) VM, one core, eight 8 MiB buffers
// in turn: the AVX-512 kernel fills and checksums at 15 to 17 GiB/s, the
// AVX2 one at 12.7, the scalar one at 6.5 to 7.2, the portable code at 4.5
// to 5 (the C++ baseline's fused scalar loop: 7.3 to 9.7); Checksum runs at
// about 52 GiB/s in cache (AVX2: 27, scalar: 23) and 20 from memory,
// hash/crc32 at 20 and 5.
//
// All functions are safe for concurrent use; none allocates.
package payload
