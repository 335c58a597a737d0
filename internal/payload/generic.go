package payload

import (
	"encoding/binary"

	"github.com/shmpc/shmpc/internal/crc32c"
)

// The portable implementation: also the reference the kernel is tested
// against.

// fillChunk writes the first len(dst) bytes (at most ChunkBytes) of chunk c
// of item seq.
func fillChunk(dst []byte, seq, c uint64) {
	fillFrom(dst, ChunkSeed(seq, c))
}

// fillFrom writes the xorshift64 stream that follows state s into dst, 8
// bytes per step, the last step cut to what fits. It returns the state
// after the last step.
func fillFrom(dst []byte, s uint64) uint64 {
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		s = xorshift64(s)
		binary.LittleEndian.PutUint64(dst[i:i+8], s)
	}
	if n < len(dst) {
		var w [8]byte
		s = xorshift64(s)
		binary.LittleEndian.PutUint64(w[:], s)
		copy(dst[n:], w[:])
	}
	return s
}

// fill3 writes three whole consecutive chunks c, c+1, c+2 into dst
// (len(dst) == 3*ChunkBytes), interleaving the three independent streams so
// the CPU overlaps their dependency chains.
func fill3(dst []byte, seq, c uint64) {
	d0 := dst[0:ChunkBytes:ChunkBytes]
	d1 := dst[ChunkBytes : 2*ChunkBytes : 2*ChunkBytes]
	d2 := dst[2*ChunkBytes : 3*ChunkBytes : 3*ChunkBytes]
	s0, s1, s2 := ChunkSeed(seq, c), ChunkSeed(seq, c+1), ChunkSeed(seq, c+2)
	for i := 0; i < ChunkBytes; i += 8 {
		s0 ^= s0 << 13
		s1 ^= s1 << 13
		s2 ^= s2 << 13
		s0 ^= s0 >> 7
		s1 ^= s1 >> 7
		s2 ^= s2 >> 7
		s0 ^= s0 << 17
		s1 ^= s1 << 17
		s2 ^= s2 << 17
		binary.LittleEndian.PutUint64(d0[i:i+8], s0)
		binary.LittleEndian.PutUint64(d1[i:i+8], s1)
		binary.LittleEndian.PutUint64(d2[i:i+8], s2)
	}
}

// fillGo is Fill on the portable path. Each group of chunks is generated
// into g's private buffer, checksummed there while it is in the L1 cache,
// and then copied to dst: the CRC is of the generated data, never of dst.
func (g *Generator) fillGo(dst []byte, seq uint64) uint32 {
	buf := g.buf[:]
	crc := uint32(0)
	c := uint64(0)
	for len(dst) >= 3*ChunkBytes {
		fill3(buf, seq, c)
		crc = crc32c.Update(crc, buf)
		copy(dst, buf)
		dst = dst[3*ChunkBytes:]
		c += 3
	}
	for len(dst) > 0 {
		n := min(len(dst), ChunkBytes)
		fillChunk(buf[:n], seq, c)
		crc = crc32c.Update(crc, buf[:n])
		copy(dst, buf[:n])
		dst = dst[n:]
		c++
	}
	return crc
}

// crcGo is CRC on g's buffer.
func (g *Generator) crcGo(seq uint64, n int) uint32 {
	buf := g.buf[:]
	crc := uint32(0)
	c := uint64(0)
	for n >= 3*ChunkBytes {
		fill3(buf, seq, c)
		crc = crc32c.Update(crc, buf)
		n -= 3 * ChunkBytes
		c += 3
	}
	for n > 0 {
		k := min(n, ChunkBytes)
		fillChunk(buf[:k], seq, c)
		crc = crc32c.Update(crc, buf[:k])
		n -= k
		c++
	}
	return crc
}
