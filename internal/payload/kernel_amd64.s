//go:build !purego

#include "textflag.h"

// The fused generate-and-CRC kernels. Their constants are internal/crc32c's
// (c *crc32c.FoldConsts, in R8), read at the offsets its fold_amd64.go
// documents: Row 0, Chunk 16, Lanes 32 (REDUCE2 reads the pair for 128
// bits at 64), Row2 112; TestFoldConstsOffsets checks them. REDUCE, FOLD2
// and REDUCE2 are also in crc32c's kernel_amd64.s: keep the copies alike.

// Register use in genCRC8:
//   Z7       the eight xorshift64 states, one chunk per 64-bit lane
//   Z0-Z7    the eight words of a block, lane k = chunk k
//   Z8-Z15   the transpose, then the rows (64 bytes of one chunk each)
//   Z16-Z23  the CRC accumulators of chunks 0-7
//   Z24      fold-by-one-row constants      Z25  the initial CRC state, xored into the first row once
//   Z28      fold-by-one-chunk constants    Z29  lane-reduction constants
//   Z26 Z27 Z30  temporaries
//   K1-K7    all ones for the chunks that exist (k < nchunks), else zero:
//            which accumulators the combination takes

// XS steps a state register: dst = xorshift64(src), shifts 13, 7, 17.
#define XS(src, dst) \
	VPSLLQ $13, src, Z27; \
	VPXORQ Z27, src, dst; \
	VPSRLQ $7, dst, Z27; \
	VPXORQ Z27, dst, dst; \
	VPSLLQ $17, dst, Z27; \
	VPXORQ Z27, dst, dst

// BLOCK steps every stream eight times (Z7 in, Z7 out) and leaves row k,
// the 64 bytes of chunk k, in: 0 Z9, 1 Z10, 2 Z11, 3 Z12, 4 Z13, 5 Z14,
// 6 Z15, 7 Z0.
#define BLOCK \
	XS(Z7, Z0); XS(Z0, Z1); XS(Z1, Z2); XS(Z2, Z3); \
	XS(Z3, Z4); XS(Z4, Z5); XS(Z5, Z6); XS(Z6, Z7); \
	VPUNPCKLQDQ Z1, Z0, Z8; \
	VPUNPCKHQDQ Z1, Z0, Z9; \
	VPUNPCKLQDQ Z3, Z2, Z10; \
	VPUNPCKHQDQ Z3, Z2, Z11; \
	VPUNPCKLQDQ Z5, Z4, Z12; \
	VPUNPCKHQDQ Z5, Z4, Z13; \
	VPUNPCKLQDQ Z7, Z6, Z14; \
	VPUNPCKHQDQ Z7, Z6, Z15; \
	VSHUFI64X2 $0x44, Z10, Z8, Z0; \
	VSHUFI64X2 $0xEE, Z10, Z8, Z1; \
	VSHUFI64X2 $0x44, Z14, Z12, Z2; \
	VSHUFI64X2 $0xEE, Z14, Z12, Z3; \
	VSHUFI64X2 $0x44, Z11, Z9, Z4; \
	VSHUFI64X2 $0xEE, Z11, Z9, Z5; \
	VSHUFI64X2 $0x44, Z15, Z13, Z6; \
	VSHUFI64X2 $0xEE, Z15, Z13, Z8; \
	VSHUFI64X2 $0x88, Z2, Z0, Z9; \
	VSHUFI64X2 $0x88, Z6, Z4, Z10; \
	VSHUFI64X2 $0xDD, Z2, Z0, Z11; \
	VSHUFI64X2 $0xDD, Z6, Z4, Z12; \
	VSHUFI64X2 $0x88, Z3, Z1, Z13; \
	VSHUFI64X2 $0x88, Z8, Z5, Z14; \
	VSHUFI64X2 $0xDD, Z3, Z1, Z15; \
	VSHUFI64X2 $0xDD, Z8, Z5, Z0

// FOLD folds accumulator acc forward by one row and adds row.
#define FOLD(acc, row) \
	VPCLMULQDQ $0x00, Z24, acc, Z26; \
	VPCLMULQDQ $0x11, Z24, acc, acc; \
	VPTERNLOGQ $0x96, Z26, row, acc

// FOLDALL folds every row into its accumulator, and the initial CRC state
// (xored into the first 32 bits of the message) into chunk 0's, once.
#define FOLDALL \
	FOLD(Z16, Z9); VPXORQ Z25, Z16, Z16; VPXORQ Z25, Z25, Z25; FOLD(Z17, Z10); FOLD(Z18, Z11); FOLD(Z19, Z12); \
	FOLD(Z20, Z13); FOLD(Z21, Z14); FOLD(Z22, Z15); FOLD(Z23, Z0)

// COMBINE folds Z16 forward by one chunk and adds acc, where mask is set.
#define COMBINE(acc, mask) \
	VPCLMULQDQ $0x00, Z28, Z16, Z26; \
	VPCLMULQDQ $0x11, Z28, Z16, Z30; \
	VPTERNLOGQ $0x96, Z26, acc, Z30; \
	VMOVDQA64 Z30, mask, Z16

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

// SETMASK(k, K) sets mask register K to all ones when k < nchunks (BX).
#define SETMASK(k, K) \
	XORL AX, AX; \
	CMPQ BX, $k; \
	CMOVQGT DX, AX; \
	KMOVW AX, K

// STORE(row, k) stores row at chunk k's current position: DI + k*8192.
#define STORE(row, k) VMOVDQU64 row, (k*8192)(DI)

// func genCRC8(dst *byte, seeds *[8]uint64, nchunks int, c *crc32c.FoldConsts, state uint32, nt bool) uint32
TEXT ·genCRC8(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ seeds+8(FP), SI
	MOVQ nchunks+16(FP), BX
	MOVQ c+24(FP), R8
	MOVL state+32(FP), AX
	VMOVD AX, X25
	MOVQ $128, CX // blocks: 128 rows of 64 bytes make a chunk

	MOVL $0xFF, DX
	SETMASK(1, K1)
	SETMASK(2, K2)
	SETMASK(3, K3)
	SETMASK(4, K4)
	SETMASK(5, K5)
	SETMASK(6, K6)
	SETMASK(7, K7)

	VBROADCASTI32X4 0(R8), Z24
	VBROADCASTI32X4 16(R8), Z28
	VMOVDQU64 32(R8), Z29
	VMOVDQU64 (SI), Z7
	VPXORQ Z16, Z16, Z16
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VPXORQ Z23, Z23, Z23

	CMPQ BX, $8
	JNE  partial
	CMPB nt+36(FP), $0
	JEQ  loop
	TESTQ $63, DI // non-temporal stores need 64-byte alignment
	JZ   ntloop

loop:
	BLOCK
	STORE(Z9, 0)
	STORE(Z10, 1)
	STORE(Z11, 2)
	STORE(Z12, 3)
	STORE(Z13, 4)
	STORE(Z14, 5)
	STORE(Z15, 6)
	STORE(Z0, 7)
	FOLDALL
	ADDQ $64, DI
	DECQ CX
	JNZ  loop
	JMP  combine

ntloop:
	BLOCK
	VMOVNTDQ Z9, (DI)
	VMOVNTDQ Z10, 8192(DI)
	VMOVNTDQ Z11, 16384(DI)
	VMOVNTDQ Z12, 24576(DI)
	VMOVNTDQ Z13, 32768(DI)
	VMOVNTDQ Z14, 40960(DI)
	VMOVNTDQ Z15, 49152(DI)
	VMOVNTDQ Z0, 57344(DI)
	FOLDALL
	ADDQ $64, DI
	DECQ CX
	JNZ  ntloop
	SFENCE // the stores are weakly ordered: finish them before the commit
	JMP  combine

	// 2 to 7 chunks: the rows of the chunks that do not exist are not
	// stored at all (branches the CPU predicts perfectly). Masked stores
	// would do, but a masked-off store to an address past the mapping is
	// slow on some CPUs (the fault is suppressed in microcode).
partial:
	BLOCK
	STORE(Z9, 0)
	STORE(Z10, 1)
	CMPQ BX, $2
	JLE  stored
	STORE(Z11, 2)
	CMPQ BX, $3
	JLE  stored
	STORE(Z12, 3)
	CMPQ BX, $4
	JLE  stored
	STORE(Z13, 4)
	CMPQ BX, $5
	JLE  stored
	STORE(Z14, 5)
	CMPQ BX, $6
	JLE  stored
	STORE(Z15, 6)

stored:
	FOLDALL
	ADDQ $64, DI
	DECQ CX
	JNZ  partial

combine:
	COMBINE(Z17, K1)
	COMBINE(Z18, K2)
	COMBINE(Z19, K3)
	COMBINE(Z20, K4)
	COMBINE(Z21, K5)
	COMBINE(Z22, K6)
	COMBINE(Z23, K7)
	REDUCE(Z16, R9)
	MOVL R9, ret+40(FP)
	VZEROUPPER
	RET

// The AVX2 kernels: the same method on YMM registers (four chunks, four
// 64-bit lanes, 32-byte rows) for CPUs with VPCLMULQDQ but not AVX-512.
//
// Register use in genCRC4:
//   Y3       the four xorshift64 states, one chunk per lane
//   Y0-Y3    the four words of a block; Y4-Y7 the transpose
//   rows     0 Y0, 1 Y1, 2 Y2, 3 Y4
//   Y8-Y11   the CRC accumulators of chunks 0-3
//   Y12      fold-by-one-row constants (by one chunk after the loop)
//   Y13      the initial CRC state, folded into chunk 0's accumulator once
//   Y14 Y15  temporaries

#define XS2(src, dst) \
	VPSLLQ $13, src, Y14; \
	VPXOR Y14, src, dst; \
	VPSRLQ $7, dst, Y14; \
	VPXOR Y14, dst, dst; \
	VPSLLQ $17, dst, Y14; \
	VPXOR Y14, dst, dst

#define BLOCK2 \
	XS2(Y3, Y0); XS2(Y0, Y1); XS2(Y1, Y2); XS2(Y2, Y3); \
	VPUNPCKLQDQ Y1, Y0, Y4; \
	VPUNPCKHQDQ Y1, Y0, Y5; \
	VPUNPCKLQDQ Y3, Y2, Y6; \
	VPUNPCKHQDQ Y3, Y2, Y7; \
	VPERM2I128 $0x20, Y6, Y4, Y0; \
	VPERM2I128 $0x20, Y7, Y5, Y1; \
	VPERM2I128 $0x31, Y6, Y4, Y2; \
	VPERM2I128 $0x31, Y7, Y5, Y4

// FOLD2(acc, row, k): acc = acc folded forward by the constants in k, xor row.
#define FOLD2(acc, row, k) \
	VPCLMULQDQ $0x00, k, acc, Y14; \
	VPCLMULQDQ $0x11, k, acc, acc; \
	VPXOR Y14, acc, acc; \
	VPXOR row, acc, acc

#define FOLDALL2 \
	FOLD2(Y8, Y0, Y12); VPXOR Y13, Y8, Y8; VPXOR Y13, Y13, Y13; \
	FOLD2(Y9, Y1, Y12); FOLD2(Y10, Y2, Y12); FOLD2(Y11, Y4, Y12)

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

#define STORE2(row, k) VMOVDQU row, (k*8192)(DI)

// func genCRC4(dst *byte, seeds *[8]uint64, nchunks int, c *crc32c.FoldConsts, state uint32, nt bool) uint32
TEXT ·genCRC4(SB), NOSPLIT, $0-44
	MOVQ dst+0(FP), DI
	MOVQ seeds+8(FP), SI
	MOVQ nchunks+16(FP), BX
	MOVQ c+24(FP), R8
	MOVL state+32(FP), AX
	VMOVD AX, X13 // zeroes the rest of Y13
	MOVQ $256, CX // blocks: 256 rows of 32 bytes make a chunk

	VBROADCASTI128 112(R8), Y12
	VMOVDQU (SI), Y3
	VPXOR Y8, Y8, Y8
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11

	CMPQ BX, $4
	JNE  partial2
	CMPB nt+36(FP), $0
	JEQ  loop2
	TESTQ $31, DI // non-temporal stores need 32-byte alignment
	JZ   ntloop2

loop2:
	BLOCK2
	STORE2(Y0, 0)
	STORE2(Y1, 1)
	STORE2(Y2, 2)
	STORE2(Y4, 3)
	FOLDALL2
	ADDQ $32, DI
	DECQ CX
	JNZ  loop2
	JMP  combine2

ntloop2:
	BLOCK2
	VMOVNTDQ Y0, (DI)
	VMOVNTDQ Y1, 8192(DI)
	VMOVNTDQ Y2, 16384(DI)
	VMOVNTDQ Y4, 24576(DI)
	FOLDALL2
	ADDQ $32, DI
	DECQ CX
	JNZ  ntloop2
	SFENCE
	JMP  combine2

partial2: // 2 or 3 chunks
	BLOCK2
	STORE2(Y0, 0)
	STORE2(Y1, 1)
	CMPQ BX, $2
	JLE  stored2
	STORE2(Y2, 2)

stored2:
	FOLDALL2
	ADDQ $32, DI
	DECQ CX
	JNZ  partial2

combine2:
	VBROADCASTI128 16(R8), Y12
	FOLD2(Y8, Y9, Y12)
	CMPQ BX, $2
	JLE  reduce2
	FOLD2(Y8, Y10, Y12)
	CMPQ BX, $3
	JLE  reduce2
	FOLD2(Y8, Y11, Y12)

reduce2:
	REDUCE2(Y8, X8, R9)
	MOVL R9, ret+40(FP)
	VZEROUPPER
	RET
