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

int main(void) {
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
