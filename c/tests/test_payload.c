/* test_payload: shmpc_payload_fill against testdata/payload/golden.txt, the
 * vectors of the independent reference testdata/payload/payload_ref.c. */
#define _GNU_SOURCE
#include <string.h>

#include "../internal.h"
#include "../payload.h"
#include "check.h"

#define GOLDEN "testdata/payload/golden.txt"

static void hex(char *out, const uint8_t *p, size_t k) {
    if (k == 0) {
        strcpy(out, "-");
        return;
    }
    for (size_t i = 0; i < k; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* fills_agree checks every fill the CPU has against the scalar one: the same
 * bytes, the same checksum, nothing written past n, at lengths around the
 * chunk (8 KiB) and three-chunk (24 KiB) edges, odd lengths and unaligned
 * destinations. Returns how many fills it compared. */
static int fills_agree(void) {
    static const char *names[] = {"sse42"};
    uint32_t (*scalar)(void *, size_t, uint64_t) = shmpc_payload_fill_kernel("scalar");
    CHECK(scalar != NULL, "no scalar fill");
    const size_t max = 5 * 24576 + 64;
    uint8_t *want = malloc(max + 16), *got = malloc(max + 16);
    static const size_t lens[] = {0, 1, 7, 8, 9, 4095, 8191, 8192, 8193, 16384, 24575, 24576, 24577, 24583,
                                  49152, 49153, 57344, 73728 + 5, 5 * 24576, 5 * 24576 + 63};
    int compared = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        uint32_t (*fill)(void *, size_t, uint64_t) = shmpc_payload_fill_kernel(names[k]);
        if (fill == NULL) {
            printf("test_payload: the CPU has no %s fill; only the scalar one is checked\n", names[k]);
            continue;
        }
        compared++;
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
            for (size_t off = 0; off < 9; off += 3)
                for (uint64_t seq = 0; seq < 3; seq++) {
                    size_t n = lens[i];
                    memset(want, 0x5A, max + 16);
                    memset(got, 0x5A, max + 16);
                    uint32_t cw = scalar(want + off, n, seq * 1000003);
                    uint32_t cg = fill(got + off, n, seq * 1000003);
                    CHECK(cw == cg, "%s: %zu bytes at offset %zu: crc %#x, scalar %#x", names[k], n, off, cg, cw);
                    CHECK(memcmp(want, got, max + 16) == 0, "%s: %zu bytes at offset %zu: bytes differ from scalar",
                          names[k], n, off);
                }
    }
    free(want);
    free(got);
    return compared;
}

int main(void) {
    printf("test_payload: shmpc_payload_fill uses %s\n", shmpc_payload_fill_name());
#if defined(__x86_64__)
    __builtin_cpu_init();
    CHECK(!__builtin_cpu_supports("sse4.2") || strcmp(shmpc_payload_fill_name(), "sse42") == 0,
          "the CPU has SSE4.2 but the fill is %s", shmpc_payload_fill_name());
#endif
    fills_agree();
    FILE *f = fopen(GOLDEN, "r");
    if (f == NULL) {
        fprintf(stderr, "test_payload: cannot open %s: run from the repository root\n", GOLDEN);
        return 1;
    }
    uint8_t *buf = malloc(8u << 20);
    char line[256];
    int vectors = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#')
            continue;
        unsigned long long seq, n;
        unsigned crc;
        char first[32], last[32];
        if (sscanf(line, "%llu %llu 0x%x %31s %31s", &seq, &n, &crc, first, last) != 5) {
            CHECK(0, "unparsed line %s", line);
            continue;
        }
        CHECK(n <= 8u << 20, "length %llu", n);
        if (n > 8u << 20)
            continue;
        memset(buf, 0xAA, n);
        uint32_t got = shmpc_payload_fill(buf, n, seq);
        size_t k = n < 8 ? n : 8;
        char hf[32], hl[32];
        hex(hf, buf, k);
        hex(hl, buf + n - k, k);
        CHECK(got == crc, "item %llu, %llu bytes: crc %#x, golden %#x", seq, n, got, crc);
        CHECK(shmpc_crc32c(0, buf, n) == crc, "item %llu, %llu bytes: the written bytes' crc differs", seq, n);
        CHECK(strcmp(hf, first) == 0 && strcmp(hl, last) == 0, "item %llu, %llu bytes: %s..%s, golden %s..%s", seq, n,
              hf, hl, first, last);
        vectors++;
    }
    fclose(f);
    free(buf);
    CHECK(vectors > 100, "only %d vectors", vectors);
    return check_done("test_payload");
}
