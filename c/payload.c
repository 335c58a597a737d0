/* payload.c: the benchmark payload. Item seq is a stream of little-endian
 * 64-bit words; word j is output number (j mod 1024)+1 of xorshift64 (13, 7,
 * 17) seeded with splitmix64((seq << 32) ^ (j div 1024)), a seed of 0
 * replaced by 0x9E3779B97F4A7C15; an item of n bytes is the first n bytes of
 * that stream.
 *
 * Two fills, the same bytes and checksum:
 *
 *   - "sse42" (x86-64 with SSE4.2): three 8 KiB chunks at a time, their three
 *     xorshift chains interleaved (one chain's step is six dependent
 *     operations; three keep the core's ALUs busy) and each word written to
 *     the destination and fed to its chunk's crc32 chain from the register it
 *     was generated in, so the destination is never read. The three chains'
 *     registers are joined with the 8 KiB shift of crc32c.c. Stores are
 *     non-temporal where the destination is 8-byte aligned: the slot is read
 *     next by another core, and keeping it out of this core's cache leaves
 *     the cache to the generator (the same choice as the Go kernels).
 *   - "scalar" (elsewhere): each chunk generated into private memory,
 *     checksummed there with the CRC kernel in use and copied on. */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"
#include "payload.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <nmmintrin.h>
#define HAVE_SSE42_FILL 1
#endif

#define G UINT64_C(0x9E3779B97F4A7C15)
#define CHUNK_WORDS 1024
#define CHUNK_BYTES (8 * CHUNK_WORDS)

static uint64_t splitmix64(uint64_t x) {
    x += G;
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* chunk_seed is the xorshift64 state chunk c of item seq starts from. */
static inline uint64_t chunk_seed(uint64_t seq, uint64_t c) {
    uint64_t x = splitmix64((seq << 32) ^ c);
    return x == 0 ? G : x;
}

static inline uint64_t xorshift64(uint64_t x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static uint32_t fill_scalar(void *dst, size_t n, uint64_t seq) {
    uint64_t words[CHUNK_WORDS];
    uint8_t *d = (uint8_t *)dst;
    uint32_t reg = 0xFFFFFFFFu;
    for (uint64_t c = 0; n > 0; c++) {
        size_t k = n < sizeof words ? n : sizeof words;
        uint64_t x = chunk_seed(seq, c);
        for (size_t j = 0; j < (k + 7) / 8; j++) {
            x = xorshift64(x);
            words[j] = x; /* little-endian: the target is (internal.h) */
        }
        reg = shmpc_crc32c_raw(reg, (const uint8_t *)words, k);
        memcpy(d, words, k);
        d += k;
        n -= k;
    }
    return ~reg;
}

#ifdef HAVE_SSE42_FILL
static inline void store64(uint8_t *p, uint64_t w) { memcpy(p, &w, 8); }

__attribute__((target("sse4.2"))) static inline void store64_nt(uint8_t *p, uint64_t w) {
    _mm_stream_si64((long long *)(void *)p, (long long)w);
}

/* FILL3 generates chunks c, c+1 and c+2 into d with three interleaved
 * chains; r0 continues the running register, r1 and r2 start from zero. */
#define FILL3(STORE)                                                                                                 \
    do {                                                                                                             \
        uint64_t x0 = chunk_seed(seq, c), x1 = chunk_seed(seq, c + 1), x2 = chunk_seed(seq, c + 2);                  \
        uint64_t r0 = reg, r1 = 0, r2 = 0;                                                                           \
        for (size_t j = 0; j < CHUNK_BYTES; j += 8) {                                                                \
            x0 = xorshift64(x0);                                                                                     \
            x1 = xorshift64(x1);                                                                                     \
            x2 = xorshift64(x2);                                                                                     \
            STORE(d + j, x0);                                                                                        \
            STORE(d + CHUNK_BYTES + j, x1);                                                                          \
            STORE(d + 2 * CHUNK_BYTES + j, x2);                                                                      \
            r0 = _mm_crc32_u64(r0, x0);                                                                              \
            r1 = _mm_crc32_u64(r1, x1);                                                                              \
            r2 = _mm_crc32_u64(r2, x2);                                                                              \
        }                                                                                                            \
        reg = shmpc_crc32c_shift_8k(shmpc_crc32c_shift_8k((uint32_t)r0) ^ (uint32_t)r1) ^ (uint32_t)r2;              \
    } while (0)

__attribute__((target("sse4.2"))) static uint32_t fill_sse42(void *dst, size_t n, uint64_t seq) {
    uint8_t *d = (uint8_t *)dst;
    uint32_t reg = 0xFFFFFFFFu;
    uint64_t c = 0;
    int nt = ((uintptr_t)d & 7) == 0;
    for (; n >= 3 * CHUNK_BYTES; n -= 3 * CHUNK_BYTES, d += 3 * CHUNK_BYTES, c += 3) {
        if (nt)
            FILL3(store64_nt);
        else
            FILL3(store64);
    }
    /* The rest, under three chunks: one chain at a time, plain stores. */
    for (; n > 0; c++) {
        size_t k = n < CHUNK_BYTES ? n : CHUNK_BYTES;
        uint64_t x = chunk_seed(seq, c), r = reg;
        size_t j = 0;
        for (; j + 8 <= k; j += 8) {
            x = xorshift64(x);
            store64(d + j, x);
            r = _mm_crc32_u64(r, x);
        }
        if (j < k) { /* a last partial word: its first k-j bytes, little-endian */
            x = xorshift64(x);
            for (; j < k; j++, x >>= 8) {
                d[j] = (uint8_t)x;
                r = _mm_crc32_u8((uint32_t)r, (uint8_t)x);
            }
        }
        reg = (uint32_t)r;
        d += k;
        n -= k;
    }
    if (nt)
        _mm_sfence(); /* the non-temporal stores before the caller publishes */
    return ~reg;
}
#endif

/* shmpc_payload_fill_kernel returns a named fill, for the tests that compare
 * them: "scalar" always, "sse42" where the CPU has it; NULL otherwise. */
uint32_t (*shmpc_payload_fill_kernel(const char *name))(void *, size_t, uint64_t) {
    if (strcmp(name, "scalar") == 0)
        return fill_scalar;
#ifdef HAVE_SSE42_FILL
    __builtin_cpu_init();
    if (strcmp(name, "sse42") == 0 && __builtin_cpu_supports("sse4.2"))
        return fill_sse42;
#endif
    return NULL;
}

/* shmpc_payload_fill_name names the fill shmpc_payload_fill uses. */
const char *shmpc_payload_fill_name(void) {
#ifdef HAVE_SSE42_FILL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        return "sse42";
#endif
    return "scalar";
}

uint32_t shmpc_payload_fill(void *dst, size_t n, uint64_t seq) {
#ifdef HAVE_SSE42_FILL
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        return fill_sse42(dst, n, seq);
#endif
    return fill_scalar(dst, n, seq);
}
