// Package payload generates and checks the demo and benchmark workload of
// DESIGN.md ("Payload of -count / -bytes"): item seq is a stream of
// little-endian 64-bit words; word j is output number (j mod 1024)+1 of
// xorshift64 (shifts 13, 7, 17) seeded with splitmix64((seq<<32) xor (j div
// 1024)), a seed of 0 replaced by 0x9E3779B97F4A7C15. The stream restarts
// every 8 KiB (a chunk), so three chunks can be generated at once. An item
// whose length is not a multiple of 8 is the prefix of that byte stream.
//
// The C++ baseline in shared/seedref uses the same definition, so both
// implementations do identical work.
//
// All functions are safe for concurrent use; none allocates.
package payload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
)

// ChunkBytes is the length of one independently seeded chunk of the pattern.
const ChunkBytes = 8192

const chunkWords = ChunkBytes / 8

// golden replaces a chunk seed of 0, which xorshift64 would keep at 0.
const golden = 0x9E3779B97F4A7C15

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Table is the CRC32C (Castagnoli) table used for item checksums.
func Table() *crc32.Table { return castagnoli }

func splitmix64(x uint64) uint64 {
	x += golden
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// ChunkSeed is the xorshift64 state that chunk c of item seq starts from.
func ChunkSeed(seq, c uint64) uint64 {
	s := splitmix64((seq << 32) ^ c)
	if s == 0 {
		return golden
	}
	return s
}

func xorshift64(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

// Word is the slow, obviously correct definition of word j of item seq. It
// exists for tests; Fill is the fast path.
func Word(seq, j uint64) uint64 {
	s := ChunkSeed(seq, j/chunkWords)
	for i := uint64(0); i <= j%chunkWords; i++ {
		s = xorshift64(s)
	}
	return s
}

// fillChunk writes the first len(dst) bytes (at most ChunkBytes) of chunk c
// of item seq.
func fillChunk(dst []byte, seq, c uint64) {
	s := ChunkSeed(seq, c)
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

// Fill writes item seq's pattern into all of dst and returns the CRC32C of
// what it wrote. Each group of chunks is generated into a private buffer
// on the stack, checksummed there while it is in the L1 cache, and then
// copied to dst: the CRC is of the generated data, never of dst read back
// (DESIGN.md contract 6), so a process scribbling on a shared dst between
// the write and the commit is caught by the consumer.
func Fill(dst []byte, seq uint64) uint32 {
	g := pool.Get().(*Generator)
	defer pool.Put(g)
	return g.Fill(dst, seq)
}

// Generator holds the private buffer Fill generates into. Its zero value
// is ready to use; it is not safe for concurrent use.
type Generator struct {
	buf [3 * ChunkBytes]byte
}

var pool = sync.Pool{New: func() any { return new(Generator) }}

// Fill is the package's Fill using g's buffer.
func (g *Generator) Fill(dst []byte, seq uint64) uint32 {
	buf := g.buf[:]
	crc := uint32(0)
	c := uint64(0)
	for len(dst) >= 3*ChunkBytes {
		fill3(buf, seq, c)
		crc = crc32.Update(crc, castagnoli, buf)
		copy(dst, buf)
		dst = dst[3*ChunkBytes:]
		c += 3
	}
	for len(dst) > 0 {
		n := min(len(dst), ChunkBytes)
		fillChunk(buf[:n], seq, c)
		crc = crc32.Update(crc, castagnoli, buf[:n])
		copy(dst, buf[:n])
		dst = dst[n:]
		c++
	}
	return crc
}

// ErrMismatch is returned (wrapped) by Check when data is not item seq's
// pattern.
var ErrMismatch = errors.New("payload does not match the pattern")

// Check reports whether data is exactly the first len(data) bytes of item
// seq's pattern. It regenerates the pattern chunk by chunk in a small
// buffer on the stack and allocates nothing on success.
func Check(data []byte, seq uint64) error {
	var buf [ChunkBytes]byte
	for c, off := uint64(0), 0; off < len(data); c, off = c+1, off+ChunkBytes {
		n := min(len(data)-off, ChunkBytes)
		fillChunk(buf[:n], seq, c)
		if string(buf[:n]) != string(data[off:off+n]) {
			for i := 0; i < n; i++ {
				if buf[i] != data[off+i] {
					return fmt.Errorf("check item %d: byte %d is %#02x, want %#02x: %w",
						seq, off+i, data[off+i], buf[i], ErrMismatch)
				}
			}
		}
	}
	return nil
}

// CRC returns the CRC32C of item seq's first n bytes without materialising
// the item.
func CRC(seq uint64, n int) uint32 {
	g := pool.Get().(*Generator)
	defer pool.Put(g)
	buf := g.buf[:]
	crc := uint32(0)
	c := uint64(0)
	for n >= 3*ChunkBytes {
		fill3(buf, seq, c)
		crc = crc32.Update(crc, castagnoli, buf)
		n -= 3 * ChunkBytes
		c += 3
	}
	for n > 0 {
		k := min(n, ChunkBytes)
		fillChunk(buf[:k], seq, c)
		crc = crc32.Update(crc, castagnoli, buf[:k])
		n -= k
		c++
	}
	return crc
}
