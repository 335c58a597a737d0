//go:build !purego

#include "textflag.h"

// The scalar kernel, for amd64 CPUs with SSE4.2 but without VPCLMULQDQ:
// three chunks at a time, each its own xorshift64 stream and its own CRC32
// chain (CRC32Q), interleaved so that the three dependency chains overlap.

// XS3 steps the state in s by xorshift64 (shifts 13, 7, 17), with t as a
// temporary; SI, R11 and R12 hold the shift counts 13, 7 and 17 (BMI2's
// three-operand shifts spare the copies).
#define XS3(s, t) \
	SHLXQ SI, s, t; XORQ t, s; \
	SHRXQ R11, s, t; XORQ t, s; \
	SHLXQ R12, s, t; XORQ t, s

// WORDS steps the three streams (AX, BX, CX) once, stores the words with
// st at offset off of each chunk (DI, DI+8192, DI+16384) and feeds them to
// the chains R8, R9, R10.
#define WORDS(st, off) \
	XS3(AX, R13); XS3(BX, R14); XS3(CX, R15); \
	st AX, off(DI); st BX, (8192+off)(DI); st CX, (16384+off)(DI); \
	CRC32Q AX, R8; CRC32Q BX, R9; CRC32Q CX, R10

// func genCRC3(dst *byte, seeds *[3]uint64, state uint32, nt bool, out *[3]uint32)
//
// Writes the three whole chunks at dst (24 KiB) and leaves in out the CRC
// registers of the three chains: chain 0 starts from state, chains 1 and 2
// from 0. With nt the stores are non-temporal (MOVNTI).
TEXT ·genCRC3(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ seeds+8(FP), SI
	MOVL state+16(FP), R8
	MOVBLZX nt+20(FP), R11
	MOVQ 0(SI), AX
	MOVQ 8(SI), BX
	MOVQ 16(SI), CX
	XORL R9, R9
	XORL R10, R10
	MOVQ $512, DX // pairs of words per chunk
	MOVQ $13, SI
	MOVQ $17, R12
	TESTQ R11, R11
	MOVQ $7, R11
	JNZ ntloop

loop:
	WORDS(MOVQ, 0)
	WORDS(MOVQ, 8)
	ADDQ $16, DI
	DECQ DX
	JNZ loop
	JMP done

ntloop:
	WORDS(MOVNTIQ, 0)
	WORDS(MOVNTIQ, 8)
	ADDQ $16, DI
	DECQ DX
	JNZ ntloop
	SFENCE

done:
	MOVQ out+24(FP), R12
	MOVL R8, 0(R12)
	MOVL R9, 4(R12)
	MOVL R10, 8(R12)
	RET
