/* test_crc: CRC32C check values, and every kernel (table, sse42 where the
 * CPU has it) against a bitwise reference over lengths and alignments that
 * cross the three-chain block boundaries; continuation and the copying
 * variants. */
#define _GNU_SOURCE
#include <string.h>

#include "../internal.h"
#include "check.h"

static uint32_t bitwise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint64_t rng = 0x1234567887654321ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(void) {
    CHECK(shmpc_crc32c(0, "123456789", 9) == 0xE3069283u, "check value %#x", shmpc_crc32c(0, "123456789", 9));
    CHECK(shmpc_crc32c(0, "", 0) == 0, "empty string");
    printf("crc32c kernel %s\n", shmpc_crc32c_kernel());

    enum { MAX = 3 * 24576 + 4096 };
    static uint8_t buf[MAX + 64], dst[MAX + 64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)next();
    const size_t lens[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1536, 2304, 8191, 24575, 24576, 24577,
                           3 * 24576 - 1, 3 * 24576, 3 * 24576 + 768 + 13, MAX};
    const char *names[] = {"table", "sse42"};
    for (int k = 0; k < 2; k++) {
        uint32_t (*fn)(uint32_t, const uint8_t *, size_t) = shmpc_crc32c_kernel_fn(names[k]);
        if (fn == NULL) {
            printf("kernel %s: not on this CPU\n", names[k]);
            continue;
        }
        for (size_t a = 0; a < 8; a++)
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
                uint32_t want = bitwise(0, buf + a, lens[l]);
                uint32_t got = ~fn(~0u, buf + a, lens[l]);
                CHECK(got == want, "kernel %s, offset %zu, length %zu: %#x, want %#x", names[k], a, lens[l], got, want);
            }
        for (int r = 0; r < 200; r++) {
            size_t a = next() % 64, n = next() % (MAX - 64);
            CHECK(~fn(~0u, buf + a, n) == bitwise(0, buf + a, n), "kernel %s, random offset %zu length %zu", names[k], a,
                  n);
        }
    }
    /* Continuation: a checksum taken in pieces is the checksum of the whole. */
    for (int r = 0; r < 100; r++) {
        size_t n = next() % MAX, cut = n ? next() % n : 0;
        uint32_t whole = shmpc_crc32c(0, buf, n);
        CHECK(shmpc_crc32c(shmpc_crc32c(0, buf, cut), buf + cut, n - cut) == whole, "pieces at %zu of %zu", cut, n);
        memset(dst, 0, sizeof dst);
        CHECK(shmpc_copy_crc32c(0, dst, buf, n) == whole && memcmp(dst, buf, n) == 0, "copy of %zu", n);
        memset(dst, 0, sizeof dst);
        CHECK(shmpc_copy_crc32c_dst(0, dst, buf, n) == whole && memcmp(dst, buf, n) == 0, "copy (dst) of %zu", n);
    }
    return check_done("test_crc");
}
