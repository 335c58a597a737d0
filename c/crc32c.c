/* crc32c.c: CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Two kernels over the raw register (no inversions): the SSE4.2 crc32
 * instruction in three interleaved chains (the instruction has a latency of
 * three cycles and a throughput of one, so three independent chains keep it
 * busy), joined by multiplying a chain's register by x^(8L) mod P with
 * precomputed tables; and slicing-by-8 tables where the CPU lacks SSE4.2.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define HAVE_SSE42_KERNEL 1
#endif

#define POLY 0x82F63B78u
#define LONG_CHAIN 8192u /* bytes per chain in a long block (3 chains) */
#define SHORT_CHAIN 256u /* bytes per chain in a short block */

static uint32_t table[8][256];
static uint32_t shift_long[4][256], shift_short[4][256];
static uint32_t (*kernel)(uint32_t, const uint8_t *, size_t);
static const char *kernel_name;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* multmodp returns a*b mod P, both in the reflected representation (the
 * coefficient of x^0 in the top bit). */
static uint32_t multmodp(uint32_t a, uint32_t b) {
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0)
                break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

/* xpow8 returns x^(8n) mod P. */
static uint32_t xpow8(uint64_t n) {
    uint32_t sq = 1u << 30; /* x^1 */
    uint32_t p = 1u << 31;  /* x^0 */
    for (uint64_t e = 8 * n; e; e >>= 1) {
        if (e & 1)
            p = multmodp(sq, p);
        sq = multmodp(sq, sq);
    }
    return p;
}

static void shift_tables(uint32_t t[4][256], uint64_t len) {
    uint32_t x = xpow8(len);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            t[k][b] = multmodp(x, b << (8 * k));
}

/* shift returns reg * x^(8L) mod P: the register after L zero bytes. */
static inline uint32_t shift(uint32_t t[4][256], uint32_t reg) {
    return t[0][reg & 0xff] ^ t[1][(reg >> 8) & 0xff] ^ t[2][(reg >> 16) & 0xff] ^ t[3][reg >> 24];
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* table_raw is the slicing-by-8 kernel. */
static uint32_t table_raw(uint32_t reg, const uint8_t *p, size_t n) {
    while (n && ((uintptr_t)p & 7)) {
        reg = (reg >> 8) ^ table[0][(reg ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint64_t w = load64(p) ^ reg;
        reg = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        reg = (reg >> 8) ^ table[0][(reg ^ *p++) & 0xff];
    return reg;
}

#ifdef HAVE_SSE42_KERNEL
/* chains3 runs three crc32 chains over the three blocks of chain bytes at p
 * (the first continuing c0) and joins them with t, the shift by chain bytes. */
__attribute__((target("sse4.2"))) static inline uint64_t chains3(uint64_t c0, const uint8_t *p, size_t chain,
                                                                 uint32_t t[4][256]) {
    uint64_t c1 = 0, c2 = 0;
    for (const uint8_t *e = p + chain; p < e; p += 8) {
        c0 = _mm_crc32_u64(c0, load64(p));
        c1 = _mm_crc32_u64(c1, load64(p + chain));
        c2 = _mm_crc32_u64(c2, load64(p + 2 * chain));
    }
    c0 = shift(t, (uint32_t)c0) ^ (uint32_t)c1;
    return shift(t, (uint32_t)c0) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t sse42_raw(uint32_t reg, const uint8_t *p, size_t n) {
    uint64_t c0 = reg;
    while (n && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        n--;
    }
    for (; n >= 3 * LONG_CHAIN; p += 3 * LONG_CHAIN, n -= 3 * LONG_CHAIN)
        c0 = chains3(c0, p, LONG_CHAIN, shift_long);
    for (; n >= 3 * SHORT_CHAIN; p += 3 * SHORT_CHAIN, n -= 3 * SHORT_CHAIN)
        c0 = chains3(c0, p, SHORT_CHAIN, shift_short);
    while (n >= 8) {
        c0 = _mm_crc32_u64(c0, load64(p));
        p += 8;
        n -= 8;
    }
    while (n--)
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return (uint32_t)c0;
}
#endif

static void init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++)
            table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
    shift_tables(shift_long, LONG_CHAIN);
    shift_tables(shift_short, SHORT_CHAIN);
    kernel = table_raw;
    kernel_name = "table";
#ifdef HAVE_SSE42_KERNEL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        kernel = sse42_raw;
        kernel_name = "sse42";
    }
#endif
}

uint32_t shmpc_crc32c_raw(uint32_t reg, const uint8_t *p, size_t n) {
    pthread_once(&once, init);
    return kernel(reg, p, n);
}

/* shmpc_crc32c_kernel_fn returns a named kernel, for the tests that compare
 * them: "table" always, "sse42" where the CPU has it; NULL otherwise. */
uint32_t (*shmpc_crc32c_kernel_fn(const char *name))(uint32_t, const uint8_t *, size_t) {
    pthread_once(&once, init);
    if (strcmp(name, "table") == 0)
        return table_raw;
#ifdef HAVE_SSE42_KERNEL
    if (strcmp(name, "sse42") == 0 && __builtin_cpu_supports("sse4.2"))
        return sse42_raw;
#endif
    return NULL;
}

/* shmpc_crc32c_shift_8k returns reg * x^(8*8192) mod P: the raw register
 * after 8192 zero bytes, the step that joins chains of 8 KiB (the payload's
 * chunk, and LONG_CHAIN here). */
uint32_t shmpc_crc32c_shift_8k(uint32_t reg) {
    _Static_assert(LONG_CHAIN == 8192, "shift_long is the 8 KiB shift");
    pthread_once(&once, init);
    return shift(shift_long, reg);
}

uint32_t shmpc_crc32c(uint32_t crc, const void *p, size_t n) {
    return ~shmpc_crc32c_raw(~crc, (const uint8_t *)p, n);
}

const char *shmpc_crc32c_kernel(void) {
    pthread_once(&once, init);
    return kernel_name;
}

/* COPY_PIECE is how much shmpc_copy_crc32c copies before it checksums the
 * piece: small enough to still be in the L1/L2 cache, a whole long block. */
#define COPY_PIECE (3 * LONG_CHAIN)

uint32_t shmpc_copy_crc32c(uint32_t crc, void *dst, const void *src, size_t n) {
    uint32_t reg = ~crc;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    while (n > 0) {
        size_t k = n < COPY_PIECE ? n : COPY_PIECE;
        memcpy(d, s, k);
        reg = shmpc_crc32c_raw(reg, s, k); /* the source, not the copy */
        d += k;
        s += k;
        n -= k;
    }
    return ~reg;
}

/* shmpc_copy_crc32c_dst is shmpc_copy_crc32c that checksums the copy (dst),
 * not the source: a consumer's private copy is what it verifies, whatever
 * happens to the shared slot meanwhile. */
uint32_t shmpc_copy_crc32c_dst(uint32_t crc, void *dst, const void *src, size_t n) {
    uint32_t reg = ~crc;
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    while (n > 0) {
        size_t k = n < COPY_PIECE ? n : COPY_PIECE;
        memcpy(d, s, k);
        reg = shmpc_crc32c_raw(reg, d, k);
        d += k;
        s += k;
        n -= k;
    }
    return ~reg;
}
