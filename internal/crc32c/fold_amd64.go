//go:build !purego

package crc32c

import "math/bits"

// The folding constants of the carry-less multiplication kernels.
//
// A 128-bit register v loaded from 16 message bytes stands for the
// polynomial poly(v) = sum of v_i * x^(127-i) (bit 0 of byte 0 is the
// highest power: CRC32C is bit-reflected), a 64-bit value a for
// poly64(a) = sum of a_i * x^(63-i). For such operands PCLMULQDQ computes
// poly(clmul(a, b)) = x * poly64(a) * poly64(b): the product of reflected
// values comes out one bit short.
//
// Folding a register forward by D bits (so it lines up with the data D bits
// later, to be xored with it) needs poly(v)*x^D modulo P. With v = lo:hi,
// poly(v) = poly64(lo)*x^64 + poly64(hi), which is
//
//	x*poly64(lo)*(x^(64+D-1) mod P) + x*poly64(hi)*(x^(D-1) mod P)
//
// modulo P: two carry-less multiplications by the constants k1 = x^(63+D)
// mod P and k2 = x^(D-1) mod P, each a polynomial of degree < 32 placed in
// the high half of a 64-bit lane (poly64(c) = r(x) for c = reverse32(r)<<32).
// The register stays congruent to the message modulo P, which is all the
// final step needs: CRC32 instructions over its two halves compute
// poly(v)*x^32 mod P, the CRC state after the message.

// crcPoly is the CRC32C polynomial P without its x^32 term, in the normal
// (not reflected) bit order: bit d is the coefficient of x^d.
const crcPoly = 0x1EDC6F41

// mulMod returns a*b mod P for residues in normal bit order.
func mulMod(a, b uint32) uint32 {
	var r uint32
	for d := 31; d >= 0; d-- {
		r = timesX(r)
		if b>>uint(d)&1 != 0 {
			r ^= a
		}
	}
	return r
}

// timesX returns r*x mod P.
func timesX(r uint32) uint32 {
	if r&(1<<31) != 0 {
		return r<<1 ^ crcPoly
	}
	return r << 1
}

// xPowMod returns x^n mod P by square and multiply.
func xPowMod(n uint64) uint32 {
	result, base := uint32(1), uint32(2) // x^0, x^1
	for ; n > 0; n >>= 1 {
		if n&1 != 0 {
			result = mulMod(result, base)
		}
		base = mulMod(base, base)
	}
	return result
}

// foldConst is the 64-bit lane constant for x^n mod P (see above).
func foldConst(n uint64) uint64 { return uint64(bits.Reverse32(xPowMod(n))) << 32 }

// foldPair returns the two constants (k1, k2) that fold a 128-bit lane
// forward by d bits.
func foldPair(d uint64) [2]uint64 { return [2]uint64{foldConst(63 + d), foldConst(d - 1)} }

// FoldConsts holds the constants that fold a 128-bit lane forward by a
// given distance, each a pair (k1, k2) for the lane's low and high 64 bits
// (see fold_amd64.go for the arithmetic). Assembly reads it at the byte
// offsets given with each field, in this package (kernel_amd64.s) and in
// internal/payload (genCRC8, genCRC4); TestFoldConstsLayout here and
// TestFoldConstsOffsets there check them.
type FoldConsts struct {
	Row   [2]uint64 // offset 0: by 512 bits (one 64-byte row)
	Chunk [2]uint64 // offset 16: by 65536 bits (one 8 KiB chunk, ChainBytes)
	Lanes [8]uint64 // offset 32: lanes 0, 1, 2 of a ZMM register by 384, 256, 128 bits onto lane 3; lane 3 by nothing (zeros)
	Quad  [2]uint64 // offset 96: by 2048 bits (four 64-byte accumulators)
	Row2  [2]uint64 // offset 112: by 256 bits (one 32-byte row, the AVX2 kernels)
	Quad2 [2]uint64 // offset 128: by 1024 bits (four 32-byte accumulators)
}

var consts = func() *FoldConsts {
	c := &FoldConsts{Row: foldPair(512), Chunk: foldPair(8 * ChainBytes), Quad: foldPair(2048),
		Row2: foldPair(256), Quad2: foldPair(1024)}
	for i, d := range []uint64{384, 256, 128} {
		k := foldPair(d)
		c.Lanes[2*i], c.Lanes[2*i+1] = k[0], k[1]
	}
	return c
}()

// Consts returns the package's folding constants, computed once. The
// caller must not modify them.
func Consts() *FoldConsts { return consts }
