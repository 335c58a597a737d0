//go:build !purego

package payload

// genCRC3 writes three whole chunks at dst, continuing the xorshift64
// streams whose states are seeds, and leaves in out the CRC registers (not
// inverted) of the three chunks: the first continued from state, the other
// two from 0 (crc32c.Combine3 joins them). nt stores non-temporally. SSE4.2.
//
//go:noescape
func genCRC3(dst *byte, seeds *[3]uint64, state uint32, nt bool, out *[3]uint32)
