package payload

import (
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/shmpc/shmpc/internal/crc32c"
)

// ChunkBytes is the length of one independently seeded chunk of the pattern.
const ChunkBytes = 8192

const chunkWords = ChunkBytes / 8

// golden replaces a chunk seed of 0, which xorshift64 would keep at 0.
const golden = 0x9E3779B97F4A7C15

// Table is the CRC32C (Castagnoli) table of hash/crc32, for references:
// the package computes its checksums with internal/crc32c.
func Table() *crc32.Table { return crc32c.Table() }

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

// Kernel names the implementation Fill uses on this machine: "avx512",
// "avx2" or "sse42" for the fused assembly kernels, "go" for the portable
// code. Checksum is internal/crc32c's, whose kernel (crc32c.Kernel) is the
// one of the same name, except where this is "go".
func Kernel() string { return kernelName() }

// Fill writes item seq's pattern into all of dst and returns the CRC32C of
// what it wrote. The CRC is computed from the generated data (in registers,
// or in a private buffer on the portable path), never from dst read back
// (checksum the source, not the slot), so a process scribbling on a shared dst between
// the write and the commit is caught by the consumer. dst may be any length.
func Fill(dst []byte, seq uint64) uint32 {
	if haveKernel {
		return fillKernel(nil, dst, seq)
	}
	g := pool.Get().(*Generator)
	defer pool.Put(g)
	return g.fillGo(dst, seq)
}

// FillCached is Fill with ordinary stores only: for a private buffer that
// is read back at once (written to a socket, say). From 64 KiB on, Fill
// writes with non-temporal stores, which keep a shared slot out of the
// producer's cache for the consumer's benefit but make a read-back come
// from memory.
func FillCached(dst []byte, seq uint64) uint32 {
	if haveKernel {
		return fillKernelCached(nil, dst, seq)
	}
	return Fill(dst, seq)
}

// Generator holds the private buffer the portable Fill generates into. Its
// zero value is ready to use; it is not safe for concurrent use. Keeping
// one per goroutine saves the package's Fill a sync.Pool round trip.
type Generator struct {
	buf [3 * ChunkBytes]byte
}

var pool = sync.Pool{New: func() any { return new(Generator) }}

// Fill is the package's Fill, using g's buffer when it needs one.
func (g *Generator) Fill(dst []byte, seq uint64) uint32 {
	if haveKernel {
		return fillKernel(g, dst, seq)
	}
	return g.fillGo(dst, seq)
}

// Checksum returns the CRC32C of b, as hash/crc32 with the Castagnoli table
// computes it: internal/crc32c.Checksum, the project's one CRC32C.
func Checksum(b []byte) uint32 { return crc32c.Checksum(b) }

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
	return g.crcGo(seq, n)
}
