//go:build !amd64 || purego

package crc32c

import "hash/crc32"

// Without the assembly kernels Checksum and Update are hash/crc32's.
var best = Generic

func implAvailable(Impl) bool { return false }

func update(_ Impl, crc uint32, b []byte) uint32 { return crc32.Update(crc, table, b) }

func copyUpdate(i Impl, crc uint32, dst, src []byte, sumDst bool) uint32 {
	return copyPieces(i, crc, dst, src, sumDst)
}

func fusedCopy(Impl) bool { return false }
