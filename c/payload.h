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
 * returns their CRC32C, computed from the generated data (each 8 KiB chunk
 * is generated in private memory, checksummed there and copied on), never
 * read back from dst. */
uint32_t shmpc_payload_fill(void *dst, size_t n, uint64_t seq);

#ifdef __cplusplus
}
#endif

#endif /* SHMPC_PAYLOAD_H */
