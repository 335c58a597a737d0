//go:build !purego

package crc32c

import (
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/cpu"
	"pgregory.net/rapid"
)

// whyNot says what this CPU (or GODEBUG) lacks for kernel i.
func whyNot(i Impl) string {
	x := &cpu.X86
	var m []string
	need := func(name string, has bool) {
		if !has {
			m = append(m, "no "+name)
		}
	}
	need("SSE4.2", x.HasSSE42)
	if i >= AVX2 {
		need("PCLMULQDQ", x.HasPCLMULQDQ)
	}
	switch i {
	case AVX2:
		need("AVX2", x.HasAVX2)
		need("VPCLMULQDQ", HasVPCLMULQDQ())
	case AVX512:
		need("AVX512F", x.HasAVX512F)
		need("AVX512VPCLMULQDQ", x.HasAVX512VPCLMULQDQ)
	}
	if len(m) == 0 {
		return "available"
	}
	return strings.Join(m, ", ") + " (CPU, OS or GODEBUG)"
}

// TestFoldConstants checks the GF(2) arithmetic the kernels' constants
// come from against the definition: x^n mod P by repeated multiplication
// by x; and that Consts holds the fold pairs of the distances its fields
// document.
func TestFoldConstants(t *testing.T) {
	r := uint32(1)
	for n := uint64(0); n <= 70000; n++ {
		if n == 32 && r != crcPoly {
			t.Fatalf("x^32 mod P = %#x, want the polynomial %#x", r, uint32(crcPoly))
		}
		if n%997 == 0 || n == 63+512 || n == 511 || n == 63+65536 || n == 65535 {
			if got := xPowMod(n); got != r {
				t.Fatalf("xPowMod(%d) = %#x, repeated multiplication gives %#x", n, got, r)
			}
		}
		r = timesX(r)
	}
	c := Consts()
	require.Equal(t, foldPair(512), c.Row)
	require.Equal(t, foldPair(65536), c.Chunk)
	require.Equal(t, foldPair(2048), c.Quad)
	require.Equal(t, foldPair(256), c.Row2)
	require.Equal(t, foldPair(1024), c.Quad2)
	lanes := [8]uint64{}
	for i, d := range []uint64{384, 256, 128} {
		k := foldPair(d)
		lanes[2*i], lanes[2*i+1] = k[0], k[1]
	}
	require.Equal(t, lanes, c.Lanes, "lanes 0-2 fold by 384, 256, 128 bits; lane 3 is zero")
	require.Equal(t, 8*ChainBytes, 65536, "Chunk folds by one chain")
}

// TestFoldConstsLayout pins the byte offsets of FoldConsts' fields that
// the assembly here (kernel_amd64.s) and in internal/payload reads, as
// documented on the type.
func TestFoldConstsLayout(t *testing.T) {
	var c FoldConsts
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"Row", unsafe.Offsetof(c.Row), 0},
		{"Chunk", unsafe.Offsetof(c.Chunk), 16},
		{"Lanes", unsafe.Offsetof(c.Lanes), 32},
		{"Quad", unsafe.Offsetof(c.Quad), 96},
		{"Row2", unsafe.Offsetof(c.Row2), 112},
		{"Quad2", unsafe.Offsetof(c.Quad2), 128},
	} {
		if f.got != f.want {
			t.Errorf("FoldConsts.%s at offset %d, the assembly reads it at %d", f.name, f.got, f.want)
		}
	}
	require.Equal(t, uintptr(144), unsafe.Sizeof(c))
}

// TestCombine3: Combine3 joins three chains over 8 KiB thirds into the
// CRC register of the whole 24 KiB, as hash/crc32 computes it.
func TestCombine3(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		buf := randomBytes(rapid.Uint64().Draw(t, "seed"), 3*ChainBytes)
		crc := rapid.Uint32().Draw(t, "crc")
		// Registers are the inverted CRCs hash/crc32 takes and returns.
		out := [3]uint32{
			^want(crc, buf[:ChainBytes]),
			^want(^uint32(0), buf[ChainBytes:2*ChainBytes]),
			^want(^uint32(0), buf[2*ChainBytes:]),
		}
		if got, w := ^Combine3(&out), want(crc, buf); got != w {
			t.Fatalf("Combine3 gives %#08x, hash/crc32 over the 24 KiB %#08x", got, w)
		}
	})
}

// forceUpdate is update without the minFold threshold: the folding kernels
// from their first whole block (BenchmarkChecksumShort).
func forceUpdate(i Impl, crc uint32, b []byte) uint32 {
	n := 0
	switch {
	case i == AVX512 && len(b) >= 256:
		n = len(b) &^ 255
		crc = ^crcBlocks(^crc, &b[0], n, consts)
	case i == AVX2 && len(b) >= 128:
		n = len(b) &^ 127
		crc = ^crcBlocks2(^crc, &b[0], n, consts)
	default:
		return i.Update(crc, b)
	}
	return crc32.Update(crc, table, b[n:])
}

// TestForceUpdate: the folding kernels are right from their first block,
// below minFold too (so the threshold is only a matter of speed).
func TestForceUpdate(t *testing.T) {
	buf := randomBytes(5, 1024)
	forEachImpl(t, func(t *testing.T, i Impl) {
		for n := 0; n <= 1024; n++ {
			if got, w := forceUpdate(i, 7, buf[:n]), want(7, buf[:n]); got != w {
				t.Fatalf("%d bytes: %#08x, hash/crc32 says %#08x", n, got, w)
			}
		}
	})
}

// BenchmarkChecksumShort: short inputs around minFold, the length from
// which update hands an input to a folding kernel, with each folding kernel
// from its first block and with hash/crc32.
func BenchmarkChecksumShort(b *testing.B) {
	for _, n := range []int{128, 192, 256, 320, 384, 512, 1024, 2048} {
		buf := randomBytes(uint64(n), n)
		b.Run(fmt.Sprintf("%dB/crc32.Checksum", n), func(b *testing.B) {
			benchOne(b, buf, func(p []byte) uint32 { return crc32.Checksum(p, Table()) })
		})
		for _, i := range []Impl{AVX2, AVX512} {
			if !i.Available() {
				continue
			}
			b.Run(fmt.Sprintf("%dB/%s", n, i), func(b *testing.B) {
				benchOne(b, buf, func(p []byte) uint32 { return forceUpdate(i, 0, p) })
			})
		}
	}
}
