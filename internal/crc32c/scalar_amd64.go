//go:build !purego

package crc32c

import "hash/crc32"

// ChainBytes is the length of each of the three CRC32 instruction chains
// of the scalar kernel (8 KiB), the distance Combine3 shifts over.
// internal/payload's scalar kernel generates chunks of this length.
const ChainBytes = 8192

// crc3 leaves in out the CRC registers (not inverted) of the three
// ChainBytes thirds of the 3*ChainBytes bytes at p, the first continued
// from state, the other two from 0. SSE4.2.
//
//go:noescape
func crc3(state uint32, p *byte, out *[3]uint32)

// shiftChain[k][b] is the CRC register that a register holding b<<(8k)
// becomes after ChainBytes zero bytes: the register's update is linear, so
// the shift of any register is the xor of four lookups.
var shiftChain = func() *[4][256]uint32 {
	zeros := make([]byte, ChainBytes)
	var bit [32]uint32
	for i := range bit {
		// Update works on inverted registers: raw(x) = ^Update(^x).
		bit[i] = ^crc32.Update(^(uint32(1) << i), table, zeros)
	}
	t := new([4][256]uint32)
	for k := range t {
		for b := range 256 {
			var v uint32
			for j := range 8 {
				if b>>j&1 != 0 {
					v ^= bit[8*k+j]
				}
			}
			t[k][b] = v
		}
	}
	return t
}()

// shift returns the CRC register r after ChainBytes zero bytes.
func shift(r uint32) uint32 {
	t := shiftChain
	return t[0][r&0xff] ^ t[1][r>>8&0xff] ^ t[2][r>>16&0xff] ^ t[3][r>>24]
}

// Combine3 returns the CRC register (not inverted) after three consecutive
// blocks of ChainBytes from the registers of three chains over them: out[0]
// continued from the register before them, out[1] and out[2] started from 0.
// The scalar kernels (this package's and internal/payload's genCRC3) leave
// their chains so.
func Combine3(out *[3]uint32) uint32 {
	return shift(shift(out[0])^out[1]) ^ out[2]
}
