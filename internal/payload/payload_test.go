package payload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCRCCheckValue(t *testing.T) {
	require.Equal(t, uint32(0xE3069283), crc32.Checksum([]byte("123456789"), Table()))
}

// reference builds item seq's first n bytes from the slow definition.
func reference(seq uint64, n int) []byte {
	out := make([]byte, (n+7)&^7)
	for j := 0; j*8 < n; j++ {
		binary.LittleEndian.PutUint64(out[j*8:], Word(seq, uint64(j)))
	}
	return out[:n]
}

func TestFillMatchesDefinition(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seq := rapid.Uint64().Draw(t, "seq")
		n := rapid.IntRange(0, 5*ChunkBytes+17).Draw(t, "len")
		want := reference(seq, n)
		got := make([]byte, n)
		crc := Fill(got, seq)
		if !bytes.Equal(got, want) {
			t.Fatalf("Fill(seq=%d, len=%d) differs from the definition", seq, n)
		}
		if w := crc32.Checksum(want, Table()); crc != w {
			t.Fatalf("Fill CRC %#x, want %#x", crc, w)
		}
		if c := CRC(seq, n); c != crc {
			t.Fatalf("CRC(seq, n) = %#x, Fill gave %#x", c, crc)
		}
		if err := Check(got, seq); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckCatchesEveryFlip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seq := rapid.Uint64().Draw(t, "seq")
		n := rapid.IntRange(1, 4*ChunkBytes).Draw(t, "len")
		buf := make([]byte, n)
		Fill(buf, seq)
		i := rapid.IntRange(0, n-1).Draw(t, "byte")
		bit := rapid.IntRange(0, 7).Draw(t, "bit")
		buf[i] ^= 1 << bit
		err := Check(buf, seq)
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("flip of byte %d bit %d not caught: %v", i, bit, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("byte %d ", i)) {
			t.Fatalf("error does not name byte %d: %v", i, err)
		}
		if seq2 := seq + 1; Check(reference(seq2, n), seq) == nil && n >= 8 {
			t.Fatalf("item %d accepted as item %d", seq2, seq)
		}
	})
}

func TestChunkSeedZeroIsReplaced(t *testing.T) {
	// splitmix64 is a bijection of uint64, so exactly one input x maps to
	// 0. Find it by undoing the finaliser step by step (the multipliers are
	// odd, so invertible mod 2^64), then reach it as chunk c of item seq.
	const seedForZero = 0x9E3779B97F4A7C15
	inverse := func(m uint64) uint64 { // Newton: 3, 6, 12, 24, 48, 96 bits
		y := m
		for range 5 {
			y *= 2 - m*y
		}
		require.Equal(t, uint64(1), m*y, "expected %#x * %#x = 1 mod 2^64", m, y)
		return y
	}
	unshift := func(z uint64, s uint) uint64 { // undoes z = y ^ y>>s
		y := z
		for i := s; i < 64; i += s {
			y = z ^ y>>s
		}
		return y
	}
	inv1, inv2 := inverse(0xBF58476D1CE4E5B9), inverse(0x94D049BB133111EB)
	unmix := func(z uint64) uint64 {
		z = unshift(z, 31)
		z = unshift(z*inv2, 27)
		z = unshift(z*inv1, 30)
		return z - seedForZero
	}
	for _, v := range []uint64{1, 0xE220A8397B1DCDAF, 1 << 63, ^uint64(0), 0x0123456789ABCDEF} {
		require.Equal(t, v, splitmix64(unmix(v)), "expected splitmix64 to undo unmix(%#x): splitmix64 is not Vigna's finaliser", v)
	}
	require.Equal(t, uint64(0xE220A8397B1DCDAF), splitmix64(0), "expected Vigna's first splitmix64 output from 0")

	x := unmix(0)
	require.Zero(t, splitmix64(x), "expected splitmix64(%#x) = 0", x)
	seq, c := x>>32, x&0xffffffff
	require.Equal(t, x, seq<<32^c, "expected (seq<<32)^c = x")
	t.Logf("splitmix64(%#x) = 0: chunk %d of item %d", x, c, seq)
	require.Equal(t, uint64(seedForZero), ChunkSeed(seq, c), "expected ChunkSeed(%d, %d) to replace the seed 0", seq, c)

	// The chunk's first two words, xorshift64 written out here.
	w := [3]uint64{seedForZero}
	for i := 1; i < len(w); i++ {
		s := w[i-1]
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		w[i] = s
	}
	require.Equal(t, w[1], Word(seq, c*chunkWords), "expected word 0 of chunk %d of item %d to be xorshift64(%#x)", c, seq, uint64(seedForZero))
	require.Equal(t, w[2], Word(seq, c*chunkWords+1), "expected word 1 of chunk %d of item %d to be the 2nd output", c, seq)
	var buf [3 * ChunkBytes]byte
	fillChunk(buf[:13], seq, c)
	require.Equal(t, w[1], binary.LittleEndian.Uint64(buf[:8]), "expected fillChunk's word 0 of chunk %d of item %d", c, seq)
	require.Equal(t, binary.LittleEndian.AppendUint64(nil, w[2])[:5], buf[8:13], "expected fillChunk's 5-byte tail to be a prefix of word 1")
	fill3(buf[:], seq, c-1) // chunks c-1, c, c+1
	require.Equal(t, w[1], binary.LittleEndian.Uint64(buf[ChunkBytes:]), "expected fill3's word 0 of chunk %d of item %d", c, seq)
	require.Equal(t, w[2], binary.LittleEndian.Uint64(buf[ChunkBytes+8:]), "expected fill3's word 1 of chunk %d of item %d", c, seq)
}

// TestMatchesSeedref builds a small C program against the C++ baseline's
// kernel header and checks that it and Fill produce the same bytes and CRC.
func TestMatchesSeedref(t *testing.T) {
	inc := seedrefInclude()
	if inc == "" {
		t.Skip("SHMPC_SEEDREF_INCLUDE does not name the external C++ baseline's include directory (with sr_kernels.h); TestMatchesCReference checks the payload against the repository's own reference")
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the seedref comparison program")
	}
	bin := filepath.Join(t.TempDir(), "seedref_fill")
	out, err := exec.Command(gcc, "-O2", "-msse4.2", "-I", inc, "-o", bin, "testdata/seedref_fill.c").CombinedOutput()
	require.NoError(t, err, "gcc: %s", out)

	type tc struct {
		seq uint64
		n   int
	}
	cases := []tc{{0, 0}, {0, 8}, {1, 8192}, {2, 3 * 8192}, {7, 8 << 20}, {1 << 40, 65536}, {511, 4096}, {123456789, 5*8192 + 8}}
	var in strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&in, "%d %d\n", c.seq, c.n)
	}
	cmd := exec.Command(bin)
	cmd.Stdin = strings.NewReader(in.String())
	res, err := cmd.Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(res)), "\n")
	require.Len(t, lines, len(cases))
	for i, c := range cases {
		buf := make([]byte, c.n)
		crc := Fill(buf, c.seq)
		h := fnv.New64a()
		h.Write(buf)
		require.Equal(t, fmt.Sprintf("%d %d", crc, h.Sum64()), lines[i], "seq %d len %d", c.seq, c.n)
	}
}

// seedrefInclude is the include directory of the external C++ baseline
// (its sr_kernels.h), given by SHMPC_SEEDREF_INCLUDE; the baseline is not
// part of the repository, so without it the comparison skips.
func seedrefInclude() string {
	p := os.Getenv("SHMPC_SEEDREF_INCLUDE")
	if p == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(p, "sr_kernels.h")); err != nil {
		return ""
	}
	abs, _ := filepath.Abs(p)
	return abs
}

func TestFillAllocatesNothing(t *testing.T) {
	buf := make([]byte, 1<<20+77)
	var g Generator
	require.Zero(t, testing.AllocsPerRun(5, func() { Fill(buf, 3) }))
	require.Zero(t, testing.AllocsPerRun(5, func() { g.Fill(buf, 3) }))
	require.Zero(t, testing.AllocsPerRun(5, func() { Checksum(buf) }))
	require.Zero(t, testing.AllocsPerRun(5, func() { _ = Check(buf, 3) }))
	require.Zero(t, testing.AllocsPerRun(5, func() { CRC(3, len(buf)) }))
}

func BenchmarkFill8MiB(b *testing.B) {
	buf := make([]byte, 8<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		Fill(buf, uint64(i))
	}
}

func BenchmarkCheck8MiB(b *testing.B) {
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := Check(buf, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCRC8MiB(b *testing.B) {
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		crc32.Update(0, Table(), buf)
	}
}

// benchRing fills eight 8 MiB buffers in turn, like a ring of 8 slots: the
// data does not stay in the cache.
func benchRing(b *testing.B, fill func(dst []byte, seq uint64) uint32) {
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 8<<20)
	}
	b.SetBytes(8 << 20)
	for i := 0; b.Loop(); i++ {
		fill(bufs[i%8], uint64(i))
	}
}

func BenchmarkFillRing(b *testing.B) { benchRing(b, Fill) }

func BenchmarkFillRingGo(b *testing.B) {
	var g Generator
	benchRing(b, g.fillGo)
}

func BenchmarkFill64KiB(b *testing.B) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		Fill(buf, uint64(i))
	}
}

func BenchmarkChecksum8MiB(b *testing.B) {
	buf := make([]byte, 8<<20)
	Fill(buf, 1)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Checksum(buf)
	}
}

func TestChecksumMatchesCRC32(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 70000).Draw(t, "len")
		off := rapid.IntRange(0, 63).Draw(t, "offset")
		seed := rapid.Uint64().Draw(t, "seed")
		buf := make([]byte, off+n)
		fillFrom(buf, seed|1)
		b := buf[off:]
		if got, want := Checksum(b), crc32.Checksum(b, Table()); got != want {
			t.Fatalf("Checksum of %d bytes at offset %d = %#x, hash/crc32 says %#x", n, off, got, want)
		}
	})
}

func TestChecksumCatchesEveryFlip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 5000).Draw(t, "len")
		buf := make([]byte, n)
		want := Fill(buf, rapid.Uint64().Draw(t, "seq"))
		require.Equal(t, want, Checksum(buf))
		i := rapid.IntRange(0, n-1).Draw(t, "byte")
		buf[i] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
		if Checksum(buf) == want {
			t.Fatalf("flip of byte %d not caught", i)
		}
	})
}

func TestKernelName(t *testing.T) {
	require.Contains(t, []string{"avx512", "avx2", "sse42", "go"}, Kernel())
	require.Equal(t, haveKernel, Kernel() != "go")
}

// TestFillCachedMatchesFill: FillCached writes the same bytes and returns
// the same CRC as Fill, also from the size where Fill turns non-temporal.
func TestFillCachedMatchesFill(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 64 << 10, 64<<10 + 13, 1 << 20} {
		a, b := make([]byte, n), make([]byte, n)
		seq := uint64(n) * 31
		ca, cb := Fill(a, seq), FillCached(b, seq)
		if ca != cb || !bytes.Equal(a, b) {
			t.Fatalf("len %d: FillCached differs from Fill (CRC %#x vs %#x)", n, cb, ca)
		}
		if err := Check(b, seq); err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
	}
}
