/* test_layout: every offset and size the C layout uses, and the geometry it
 * computes, against ring/testdata/layout.golden (the Go side's pinned
 * layout). Every field of the golden file must be known here, and every
 * field the C structs declare must be in the golden file. */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>

#include "../internal.h"
#include "check.h"

#define GOLDEN "ring/testdata/layout.golden"

struct field {
    const char *name;
    size_t offset, size;
    int seen;
};

#define H(golden, member) {"header." golden, offsetof(struct shmpc_header, member), sizeof(((struct shmpc_header *)0)->member), 0}
#define I(golden, role, member)                                                                              \
    {"header." golden, offsetof(struct shmpc_header, role) + offsetof(struct shmpc_identity, member),           \
     sizeof(((struct shmpc_identity *)0)->member), 0}
#define D(golden, member) {"descriptor." golden, offsetof(struct shmpc_desc, member), sizeof(((struct shmpc_desc *)0)->member), 0}

static struct field fields[] = {
    H("magic", magic), H("version", version), H("headerSize", header_size), H("slots", slots),
    H("slotSize", slot_size), H("slotStride", slot_stride), H("slotAlign", slot_align), H("descOffset", desc_offset),
    H("dataOffset", data_offset), H("totalSize", total_size), H("flags", flags), H("ownerUID", owner_uid),
    H("streamItems", stream_items), H("streamBytes", stream_bytes), H("nameLen", name_len), H("name", name),
    H("end", end), H("drained", drained),
    I("producer.seq", producer, seq), I("producer.pid", producer, pid), I("producer.start", producer, start),
    I("producer.gen", producer, gen),
    I("consumer.seq", consumer, seq), I("consumer.pid", consumer, pid), I("consumer.start", consumer, start),
    I("consumer.gen", consumer, gen),
    H("items", items), H("bytes", bytes), H("integrity", integrity), H("app", app), H("head", head),
    H("committedBytes", committed_bytes), H("producerSleeps", producer_sleeps), H("producerWakes", producer_wakes),
    H("producerLosses", producer_losses), H("producerLostGen", producer_lost_gen), H("tail", tail),
    H("consumerSleeps", consumer_sleeps), H("consumerWakes", consumer_wakes), H("consumerLosses", consumer_losses),
    H("consumerLostGen", consumer_lost_gen), H("consumerWaiting", consumer_waiting),
    H("producerWaiting", producer_waiting),
    D("seq", seq), D("length", length), D("crc", crc), D("flags", flags),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static void check_geometry(const char *line) {
    unsigned long long slots, size, stride, align, desc, data, total;
    if (sscanf(line, "geometry slots %llu slotSize %llu: stride %llu align %llu descOffset %llu dataOffset %llu total %llu",
               &slots, &size, &stride, &align, &desc, &data, &total) != 7) {
        CHECK(0, "unparsed geometry line: %s", line);
        return;
    }
    struct shmpc_geometry g;
    CHECK_RC(shmpc_geometry(slots, size, &g), 0);
    CHECK(g.stride == stride && g.align == align && g.desc_off == desc && g.data_off == data && g.total == total,
          "geometry %llu x %llu: got stride %llu align %llu desc %llu data %llu total %llu; golden: %s", slots, size,
          (unsigned long long)g.stride, (unsigned long long)g.align, (unsigned long long)g.desc_off,
          (unsigned long long)g.data_off, (unsigned long long)g.total, line);
}

int main(void) {
    FILE *f = fopen(GOLDEN, "r");
    if (f == NULL) {
        fprintf(stderr, "test_layout: cannot open %s: run from the repository root\n", GOLDEN);
        return 1;
    }
    char line[512];
    int geometries = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0)
            continue;
        char name[128];
        unsigned long long off, size, v;
        char magic[16];
        if (sscanf(line, "magic \"%8[^\"]\" version %llu", magic, &v) == 2) {
            CHECK(memcmp(magic, &(uint64_t){SHMPC_MAGIC}, 8) == 0, "magic %s differs from SHMPC_MAGIC", magic);
            CHECK(v == SHMPC_VERSION, "version %llu, C has %u", v, SHMPC_VERSION);
        } else if (sscanf(line, "header size %llu", &size) == 1) {
            CHECK(size == sizeof(struct shmpc_header), "header size %llu, C struct %zu", size,
                  sizeof(struct shmpc_header));
        } else if (sscanf(line, "descriptor size %llu", &size) == 1) {
            CHECK(size == sizeof(struct shmpc_desc), "descriptor size %llu, C struct %zu", size,
                  sizeof(struct shmpc_desc));
        } else if (strncmp(line, "geometry ", 9) == 0) {
            check_geometry(line);
            geometries++;
        } else if (sscanf(line, "%127s offset %llu size %llu", name, &off, &size) == 3) {
            size_t i = 0;
            while (i < NFIELDS && strcmp(fields[i].name, name) != 0)
                i++;
            CHECK(i < NFIELDS, "golden field %s is not known to the C layout", name);
            if (i < NFIELDS) {
                fields[i].seen = 1;
                CHECK(fields[i].offset == off && fields[i].size == size, "%s: C offset %zu size %zu, golden %llu %llu",
                      name, fields[i].offset, fields[i].size, off, size);
            }
        } else {
            CHECK(0, "unparsed golden line: %s", line);
        }
    }
    fclose(f);
    for (size_t i = 0; i < NFIELDS; i++)
        CHECK(fields[i].seen, "C field %s is not in %s", fields[i].name, GOLDEN);
    CHECK(geometries >= 7, "only %d geometry lines", geometries);
    /* The protocol's sizes that the golden file states in prose. */
    CHECK(sizeof(struct shmpc_identity) == 64, "identity is %zu bytes", sizeof(struct shmpc_identity));
    return check_done("test_layout");
}
