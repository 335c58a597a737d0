//go:build !purego

package payload

import "hash/crc32"

// genCRC3 writes three whole chunks at dst, continuing the xorshift64
// streams whose states are seeds, and leaves in out the CRC registers (not
// inverted) of the three chunks: the first continued from state, the other
// two from 0 (combine3 joins them). nt stores non-temporally. SSE4.2.
//
//go:noescape
func genCRC3(dst *byte, seeds *[3]uint64, state uint32, nt bool, out *[3]uint32)

// crc3 leaves in out the CRC registers of the three 8 KiB thirds of the
// 24 KiB at p, the first continued from state, the other two from 0.
//
//go:noescape
func crc3(state uint32, p *byte, out *[3]uint32)

// shiftChunk[k][b] is the CRC register that a register holding b<<(8k)
// becomes after ChunkBytes zero bytes: the register's update is linear, so
// the shift of any register is the xor of four lookups.
var shiftChunk = func() *[4][256]uint32 {
	zeros := make([]byte, ChunkBytes)
	var bit [32]uint32
	for i := range bit {
		// Update works on inverted registers: raw(x) = ^Update(^x).
		bit[i] = ^crc32.Update(^(uint32(1) << i), castagnoli, zeros)
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

// shift returns the CRC register r after ChunkBytes zero bytes.
func shift(r uint32) uint32 {
	t := shiftChunk
	return t[0][r&0xff] ^ t[1][r>>8&0xff] ^ t[2][r>>16&0xff] ^ t[3][r>>24]
}

// combine3 returns the CRC register after three consecutive chunks from
// the registers of their chains (the first continued from the state
// before them, the other two from 0).
func combine3(out *[3]uint32) uint32 {
	return shift(shift(out[0])^out[1]) ^ out[2]
}
