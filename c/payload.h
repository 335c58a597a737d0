/* payload.h: the benchmark payload of `-count` and `-bytes` (docs/cli.md,
 * "The payload of -count and -bytes"), for shmpc-c and the tests. */
#ifndef SHMPC_PAYLOAD_H
#define SHMPC_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* shmpc_payload_fill writes the first n bytes of item seq into dst and
 * returns their CRC32C, computed from the generated words as they are
 * written (x86-64 with SSE4.2; elsewhere from a private copy of each 8 KiB
 * chunk), never read back from dst. */
uint32_t shmpc_payload_fill(void *dst, size_t n, uint64_t seq);

/* shmpc_payload_fill_name names the fill in use: "sse42" or "scalar". */
const char *shmpc_payload_fill_name(void);

#ifdef __cplusplus
}
#endif

#endif /* SHMPC_PAYLOAD_H */
