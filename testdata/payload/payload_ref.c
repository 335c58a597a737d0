/* payload_ref.c: the independent reference of the benchmark payload.
 *
 * Written from the text of the payload definition (README, "Objects
 * of one ring"; the doc comment of internal/payload), not from the Go
 * code or any other implementation, and sharing nothing with them:
 *
 *   Item seq is little-endian 64-bit words; word j is output number
 *   (j mod 1024)+1 of xorshift64 (x ^= x<<13; x ^= x>>7; x ^= x<<17) seeded
 *   with splitmix64((seq << 32) xor (j div 1024)), a seed of 0 replaced by
 *   0x9E3779B97F4A7C15. An item whose length is not a multiple of 8 is the
 *   prefix of that word stream. The CRC is CRC32C (reflected polynomial
 *   0x82F63B78, init and final xor 0xFFFFFFFF) over the item's bytes.
 *
 * Usage:
 *   payload_ref            reads lines "seq n" (decimal) on stdin and prints
 *                          for each one line "seq n crc first last" (below)
 *   payload_ref --golden   prints testdata/payload/golden.txt
 *
 * Output line: seq and n in decimal; crc, the CRC32C of the item's first n
 * bytes, as 0x%08x; first and last, the item's bytes [0, k) and [n-k, n)
 * with k = min(n, 8), as lowercase hex in memory order ("-" when n is 0).
 *
 * internal/payload/reference_test.go uses it twice: TestGoldenVectors checks
 * the Go generator against golden.txt (no compiler needed), and
 * TestMatchesCReference builds this file with gcc, checks that --golden
 * still prints golden.txt, and compares the Go generator with it on the
 * golden cases and a few hundred random (seq, n) pairs.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -Werror -o payload_ref payload_ref.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_FOR_ZERO 0x9E3779B97F4A7C15ull
#define WORDS_PER_SEED 1024u

static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t xorshift64(uint64_t x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Bitwise CRC32C update, one bit at a time: no table. */
static uint32_t crc32c_update(uint32_t crc, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

/* item writes the first n bytes of item seq into out. */
static void item(unsigned char *out, uint64_t seq, uint64_t n) {
    uint64_t x = 0;
    for (uint64_t j = 0; j * 8 < n; j++) {
        if (j % WORDS_PER_SEED == 0) {
            x = splitmix64((seq << 32) ^ (j / WORDS_PER_SEED));
            if (x == 0)
                x = SEED_FOR_ZERO;
        }
        x = xorshift64(x); /* output number (j mod 1024)+1 */
        for (uint64_t b = 0; b < 8 && j * 8 + b < n; b++)
            out[j * 8 + b] = (unsigned char)(x >> (8 * b)); /* little-endian */
    }
}

static void hex(const unsigned char *p, uint64_t k) {
    if (k == 0) {
        fputs("-", stdout);
        return;
    }
    for (uint64_t i = 0; i < k; i++)
        printf("%02x", p[i]);
}

/* describe prints the output line for item seq, n bytes. */
static int describe(uint64_t seq, uint64_t n) {
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        fprintf(stderr, "payload_ref: cannot allocate %llu bytes\n", (unsigned long long)n);
        return -1;
    }
    item(buf, seq, n);
    uint32_t crc = crc32c_update(0xFFFFFFFFu, buf, n) ^ 0xFFFFFFFFu;
    uint64_t k = n < 8 ? n : 8;
    printf("%llu %llu 0x%08lx ", (unsigned long long)seq, (unsigned long long)n, (unsigned long)crc);
    hex(buf, k);
    fputs(" ", stdout);
    hex(buf + (n - k), k);
    fputs("\n", stdout);
    free(buf);
    return 0;
}

static const uint64_t golden_seqs[] = {
    0, 1, 2, 7, 1ull << 20, (1ull << 32) - 1, (1ull << 40) + 3, (1ull << 63) + 5,
};

static const uint64_t golden_lens[] = {
    0, 1, 3, 7, 8, 9, 15, 16, 4095, 4096, 8191, 8192, 8193, 16384, 16384 + 5,
    3 * 8192 + 3, 65535, 65536, 65536 + 13, (1u << 20) + 7, 8u << 20,
};

static int golden(void) {
    puts("# Golden vectors of the benchmark payload (internal/payload), printed by");
    puts("# testdata/payload/payload_ref.c, the independent C reference of the payload");
    puts("# definition:");
    puts("#   gcc -std=c11 -O2 -Wall -Wextra -Werror -o payload_ref testdata/payload/payload_ref.c");
    puts("#   ./payload_ref --golden > testdata/payload/golden.txt");
    puts("# One vector a line: seq n crc first last. seq and n are decimal; crc is the");
    puts("# CRC32C of item seq's first n bytes; first and last are the item's bytes");
    puts("# [0, k) and [n-k, n), k = min(n, 8), in hex in memory order (\"-\" if n is 0).");
    puts("# Checked by TestGoldenVectors in internal/payload/reference_test.go.");
    for (size_t s = 0; s < sizeof golden_seqs / sizeof golden_seqs[0]; s++)
        for (size_t l = 0; l < sizeof golden_lens / sizeof golden_lens[0]; l++)
            if (describe(golden_seqs[s], golden_lens[l]) != 0)
                return 1;
    return 0;
}

/* selftest checks the primitives against published known answers: the
 * CRC32C check value of "123456789" and splitmix64's first output from 0. */
static int selftest(void) {
    static const unsigned char check[] = "123456789";
    if ((crc32c_update(0xFFFFFFFFu, check, 9) ^ 0xFFFFFFFFu) != 0xE3069283u ||
        splitmix64(0) != 0xE220A8397B1DCDAFull) {
        fprintf(stderr, "payload_ref: self-test of CRC32C or splitmix64 failed\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (selftest() != 0)
        return 1;
    if (argc == 2 && strcmp(argv[1], "--golden") == 0)
        return golden();
    if (argc != 1) {
        fprintf(stderr, "usage: payload_ref [--golden] (reads \"seq n\" lines on stdin)\n");
        return 2;
    }
    unsigned long long seq, n;
    int r;
    while ((r = scanf("%llu %llu", &seq, &n)) == 2)
        if (describe(seq, n) != 0)
            return 1;
    if (r != EOF) {
        fprintf(stderr, "payload_ref: expected lines \"seq n\" on stdin\n");
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
