// send_blocks: a C++ producer that sends 8 MiB blocks through a shmpc ring,
// as the original C++ producer did. Any shmpc consumer reads them:
//
//   shmpc consume -name demo -manifest blocks.txt &
//   send_blocks demo 64
//
// Each block is filled in place in the reserved slot, and its CRC32C is
// taken while it is written, piece by piece, from the data as it was written
// (shmpc_commit_crc): the checksum is that of the source, not read back from
// shared memory later.
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "shmpc.h"

namespace {

volatile std::sig_atomic_t stop = 0;

void on_signal(int) { stop = 1; }

constexpr std::size_t kBlock = 8u << 20; // 8 MiB, the slot size
constexpr std::size_t kPiece = 64u << 10;

// fill_piece writes piece number i of block seq: a simple pattern that is
// cheap to make and different for every block and piece.
void fill_piece(std::vector<std::uint64_t> &piece, std::uint64_t seq, std::uint64_t i) {
    std::uint64_t x = (seq << 32) ^ i ^ 0x9E3779B97F4A7C15ull;
    for (auto &w : piece) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w = x;
    }
}

int fail(const char *what) {
    std::fprintf(stderr, "send_blocks: %s: %s\n", what, shmpc_last_error());
    return 1;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: send_blocks NAME COUNT\n");
        return 2;
    }
    const char *name = argv[1];
    const std::uint64_t count = std::strtoull(argv[2], nullptr, 10);
    struct sigaction sa {};
    sa.sa_handler = on_signal; // no SA_RESTART: a wait returns at once
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    shmpc_producer_opts opts{};
    opts.slots = 8;
    opts.slot_size = kBlock;
    opts.stream_items = count;
    opts.stream_bytes = count * kBlock;
    opts.stop = &stop;
    shmpc_producer *p = nullptr;
    if (shmpc_producer_open(name, &opts, &p) != 0)
        return fail("open");

    std::vector<std::uint64_t> piece(kPiece / sizeof(std::uint64_t));
    int rc = 0;
    for (std::uint64_t seq = shmpc_producer_next(p); seq < count && rc == 0; seq++) {
        shmpc_slot slot{};
        if ((rc = shmpc_reserve(p, &slot)) != 0)
            break;
        auto *dst = static_cast<unsigned char *>(slot.buf);
        std::uint32_t crc = 0;
        for (std::size_t off = 0; off < kBlock; off += kPiece) {
            fill_piece(piece, seq, off / kPiece);
            crc = shmpc_copy_crc32c(crc, dst + off, piece.data(), kPiece);
        }
        rc = shmpc_commit_crc(p, kBlock, crc);
    }
    if (rc == SHMPC_ECANCELED)
        rc = 0; // a signal: end the stream where it stands
    if (rc == 0)
        rc = shmpc_end(p); // waits until the consumer has every block, removes the ring
    if (rc != 0) {
        fail("send");
        shmpc_producer_close(p);
        return rc == SHMPC_EPEERLOST ? 3 : 1;
    }
    std::fprintf(stderr, "send_blocks: %llu blocks of 8 MiB sent (crc32c kernel %s)\n",
                 static_cast<unsigned long long>(shmpc_producer_next(p)), shmpc_crc32c_kernel());
    shmpc_producer_close(p);
    return 0;
}
