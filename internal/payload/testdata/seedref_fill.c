/* Prints, for each "seq len" pair on stdin, the CRC32C that the C++ baseline's
 * sr_fill returns and the FNV-1a-64 of the bytes it wrote, so the Go payload
 * generator can be checked against the baseline's definition. Built by
 * payload_test.go against the baseline's include directory when
 * SHMPC_SEEDREF_INCLUDE names it (the baseline is not part of the repository). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "sr_kernels.h"

int main(void) {
    unsigned long long seq, len;
    sr_crc32c_init();
    while (scanf("%llu %llu", &seq, &len) == 2) {
        unsigned char *buf = aligned_alloc(64, len + 64);
        uint32_t crc = sr_fill(buf, len, seq);
        uint64_t h = 14695981039346656037ull;
        for (unsigned long long i = 0; i < len; i++) { h ^= buf[i]; h *= 1099511628211ull; }
        printf("%u %llu\n", crc, (unsigned long long)h);
        free(buf);
    }
    return 0;
}
