/* payload.c: the benchmark payload. Item seq is a stream of little-endian
 * 64-bit words; word j is output number (j mod 1024)+1 of xorshift64 (13, 7,
 * 17) seeded with splitmix64((seq << 32) ^ (j div 1024)), a seed of 0
 * replaced by 0x9E3779B97F4A7C15; an item of n bytes is the first n bytes of
 * that stream. */
#define _GNU_SOURCE
#include <string.h>

#include "internal.h"
#include "payload.h"

#define G UINT64_C(0x9E3779B97F4A7C15)
#define CHUNK_WORDS 1024

static uint64_t splitmix64(uint64_t x) {
    x += G;
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

uint32_t shmpc_payload_fill(void *dst, size_t n, uint64_t seq) {
    uint64_t words[CHUNK_WORDS];
    uint8_t *d = (uint8_t *)dst;
    uint32_t reg = 0xFFFFFFFFu;
    for (uint64_t c = 0; n > 0; c++) {
        size_t k = n < sizeof words ? n : sizeof words;
        uint64_t x = splitmix64((seq << 32) ^ c);
        if (x == 0)
            x = G;
        for (size_t j = 0; j < (k + 7) / 8; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words[j] = x; /* little-endian: the target is (internal.h) */
        }
        reg = shmpc_crc32c_raw(reg, (const uint8_t *)words, k);
        memcpy(d, words, k);
        d += k;
        n -= k;
    }
    return ~reg;
}
