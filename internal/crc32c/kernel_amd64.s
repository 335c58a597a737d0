//go:build !purego

#include "textflag.h"

// The folding kernels: four accumulators of 64 bytes (crcBlocks, ZMM
// registers, AVX-512) or 32 bytes (crcBlocks2, YMM registers, AVX2) hold a
// block of four rows; each is folded forward by one block (Quad, Quad2)
// and xored with its row of the next block. At the end the accumulators
// are folded onto one a row apart (Row, Row2) and reduced to 32 bits
// (Lanes). R8 holds the *FoldConsts, read at the offsets documented in
// fold_amd64.go: Row 0, Lanes 32 (REDUCE2 reads the pair for 128 bits at
// 64), Quad 96, Row2 112, Quad2 128.
//
// REDUCE, FOLD2 and REDUCE2 are also in internal/payload's kernel_amd64.s
// (its fused kernels end the same way); keep the copies alike.

// REDUCE(acc, out) folds the four lanes of acc onto one with the constants
// in Z29 and leaves in out the CRC32C state after the message acc stands
// for, starting from 0. Clobbers X1-X4, Z26, Z30, AX, DX.
#define REDUCE(acc, out) \
	VPCLMULQDQ $0x00, Z29, acc, Z26; \
	VPCLMULQDQ $0x11, Z29, acc, Z30; \
	VPXORQ Z26, Z30, Z30; \
	VEXTRACTI32X4 $3, acc, X1; \
	VEXTRACTI32X4 $0, Z30, X2; \
	VEXTRACTI32X4 $1, Z30, X3; \
	VEXTRACTI32X4 $2, Z30, X4; \
	VPXOR X2, X1, X1; \
	VPXOR X4, X3, X3; \
	VPXOR X3, X1, X1; \
	MOVQ X1, AX; \
	VPEXTRQ $1, X1, DX; \
	XORL out, out; \
	CRC32Q AX, out; \
	CRC32Q DX, out

// func crcBlocks(state uint32, p *byte, n int, c *FoldConsts) uint32
TEXT ·crcBlocks(SB), NOSPLIT, $0-36
	MOVL state+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8
	VMOVD AX, X5
	VMOVDQU64 0(SI), Z0
	VMOVDQU64 64(SI), Z1
	VMOVDQU64 128(SI), Z2
	VMOVDQU64 192(SI), Z3
	VPXORQ Z5, Z0, Z0
	VBROADCASTI32X4 96(R8), Z24
	VBROADCASTI32X4 0(R8), Z28
	VMOVDQU64 32(R8), Z29
	ADDQ $256, SI
	SUBQ $256, CX
	JZ   crcdone

crcloop:
	VPCLMULQDQ $0x00, Z24, Z0, Z8
	VPCLMULQDQ $0x00, Z24, Z1, Z9
	VPCLMULQDQ $0x00, Z24, Z2, Z10
	VPCLMULQDQ $0x00, Z24, Z3, Z11
	VPCLMULQDQ $0x11, Z24, Z0, Z0
	VPCLMULQDQ $0x11, Z24, Z1, Z1
	VPCLMULQDQ $0x11, Z24, Z2, Z2
	VPCLMULQDQ $0x11, Z24, Z3, Z3
	VPTERNLOGQ $0x96, 0(SI), Z8, Z0
	VPTERNLOGQ $0x96, 64(SI), Z9, Z1
	VPTERNLOGQ $0x96, 128(SI), Z10, Z2
	VPTERNLOGQ $0x96, 192(SI), Z11, Z3
	ADDQ $256, SI
	SUBQ $256, CX
	JNZ  crcloop

crcdone:
	// Fold the four accumulators into Z0 one row apart, then reduce.
	VPCLMULQDQ $0x00, Z28, Z0, Z8
	VPCLMULQDQ $0x11, Z28, Z0, Z0
	VPTERNLOGQ $0x96, Z8, Z1, Z0
	VPCLMULQDQ $0x00, Z28, Z0, Z8
	VPCLMULQDQ $0x11, Z28, Z0, Z0
	VPTERNLOGQ $0x96, Z8, Z2, Z0
	VPCLMULQDQ $0x00, Z28, Z0, Z8
	VPCLMULQDQ $0x11, Z28, Z0, Z0
	VPTERNLOGQ $0x96, Z8, Z3, Z0
	REDUCE(Z0, R9)
	MOVL R9, ret+32(FP)
	VZEROUPPER
	RET

// FOLD2(acc, row, k): acc = acc folded forward by the constants in k, xor row.
#define FOLD2(acc, row, k) \
	VPCLMULQDQ $0x00, k, acc, Y14; \
	VPCLMULQDQ $0x11, k, acc, acc; \
	VPXOR Y14, acc, acc; \
	VPXOR row, acc, acc

// REDUCE2(acc, accx, out): fold the two lanes of acc (accx is its low
// half) into one (constants for 128 bits at 64(R8)) and leave in out the
// CRC32C state after the message acc stands for, starting from 0.
// Clobbers X12-X15, AX, DX.
#define REDUCE2(acc, accx, out) \
	VEXTRACTI128 $1, acc, X15; \
	VMOVDQU 64(R8), X12; \
	VPCLMULQDQ $0x00, X12, accx, X14; \
	VPCLMULQDQ $0x11, X12, accx, X13; \
	VPXOR X14, X13, X13; \
	VPXOR X15, X13, X13; \
	MOVQ X13, AX; \
	VPEXTRQ $1, X13, DX; \
	XORL out, out; \
	CRC32Q AX, out; \
	CRC32Q DX, out

// func crcBlocks2(state uint32, p *byte, n int, c *FoldConsts) uint32
// n is a multiple of 128, at least 128.
TEXT ·crcBlocks2(SB), NOSPLIT, $0-36
	MOVL state+0(FP), AX
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ c+24(FP), R8
	VMOVD AX, X5
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU 64(SI), Y2
	VMOVDQU 96(SI), Y3
	VPXOR Y5, Y0, Y0
	VBROADCASTI128 128(R8), Y12
	ADDQ $128, SI
	SUBQ $128, CX
	JZ   crcdone2

crcloop2:
	FOLD2(Y0, 0(SI), Y12)
	FOLD2(Y1, 32(SI), Y12)
	FOLD2(Y2, 64(SI), Y12)
	FOLD2(Y3, 96(SI), Y12)
	ADDQ $128, SI
	SUBQ $128, CX
	JNZ  crcloop2

crcdone2:
	VBROADCASTI128 112(R8), Y12
	FOLD2(Y0, Y1, Y12)
	FOLD2(Y0, Y2, Y12)
	FOLD2(Y0, Y3, Y12)
	REDUCE2(Y0, X0, R9)
	MOVL R9, ret+32(FP)
	VZEROUPPER
	RET

// The fused copy kernel: crcBlocks2 on the rows it copies. Each 128-byte
// block is loaded into Y4-Y7, stored to DI (ordinary or non-temporal
// stores) and folded into the accumulators Y0-Y3 from the registers, so
// the source is read once and the destination never.

#define LOAD4 \
	VMOVDQU 0(SI), Y4; \
	VMOVDQU 32(SI), Y5; \
	VMOVDQU 64(SI), Y6; \
	VMOVDQU 96(SI), Y7

#define FOLD4 \
	FOLD2(Y0, Y4, Y12); \
	FOLD2(Y1, Y5, Y12); \
	FOLD2(Y2, Y6, Y12); \
	FOLD2(Y3, Y7, Y12)

#define NEXT \
	ADDQ $128, SI; \
	ADDQ $128, DI; \
	SUBQ $128, CX

// func copyBlocks2(state uint32, dst, src *byte, n int, c *FoldConsts, nt bool) uint32
// n is a multiple of 128, at least 128; with nt, DI is 32-byte aligned.
TEXT ·copyBlocks2(SB), NOSPLIT, $0-52
	MOVL state+0(FP), AX
	MOVQ dst+8(FP), DI
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), R8
	VMOVD AX, X5
	VBROADCASTI128 128(R8), Y12
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU 64(SI), Y2
	VMOVDQU 96(SI), Y3
	CMPB nt+40(FP), $0
	JNE  ntfirst

	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VPXOR Y5, Y0, Y0
	NEXT
	JZ   copydone

copyloop:
	LOAD4
	VMOVDQU Y4, 0(DI)
	VMOVDQU Y5, 32(DI)
	VMOVDQU Y6, 64(DI)
	VMOVDQU Y7, 96(DI)
	FOLD4
	NEXT
	JNZ  copyloop
	JMP  copydone

ntfirst:
	VMOVNTDQ Y0, 0(DI)
	VMOVNTDQ Y1, 32(DI)
	VMOVNTDQ Y2, 64(DI)
	VMOVNTDQ Y3, 96(DI)
	VPXOR Y5, Y0, Y0
	NEXT
	JZ   ntdone

ntloop:
	LOAD4
	VMOVNTDQ Y4, 0(DI)
	VMOVNTDQ Y5, 32(DI)
	VMOVNTDQ Y6, 64(DI)
	VMOVNTDQ Y7, 96(DI)
	FOLD4
	NEXT
	JNZ  ntloop

ntdone:
	SFENCE

copydone:
	VBROADCASTI128 112(R8), Y12
	FOLD2(Y0, Y1, Y12)
	FOLD2(Y0, Y2, Y12)
	FOLD2(Y0, Y3, Y12)
	REDUCE2(Y0, X0, R9)
	MOVL R9, ret+48(FP)
	VZEROUPPER
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
