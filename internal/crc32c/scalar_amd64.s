//go:build !purego

#include "textflag.h"

// The scalar kernel, for amd64 CPUs with SSE4.2 but without VPCLMULQDQ:
// three CRC32 instruction chains (CRC32Q) over the three 8 KiB thirds of
// each 24 KiB block, interleaved so that their dependency chains overlap.
// Combine3 (scalar_amd64.go) joins them.

// func crc3(state uint32, p *byte, out *[3]uint32)
//
// Leaves in out the CRC registers of three chains over the three 8 KiB
// thirds of the 24 KiB at p: chain 0 starts from state, chains 1 and 2
// from 0.
TEXT ·crc3(SB), NOSPLIT, $0-24
	MOVL state+0(FP), R8
	MOVQ p+8(FP), SI
	MOVQ out+16(FP), R12
	XORL R9, R9
	XORL R10, R10
	MOVQ $512, DX // pairs of words per third

loop3:
	CRC32Q 0(SI), R8
	CRC32Q 8192(SI), R9
	CRC32Q 16384(SI), R10
	CRC32Q 8(SI), R8
	CRC32Q 8200(SI), R9
	CRC32Q 16392(SI), R10
	ADDQ $16, SI
	DECQ DX
	JNZ loop3
	MOVL R8, 0(R12)
	MOVL R9, 4(R12)
	MOVL R10, 8(R12)
	RET
