package shm

// Everything that needs package unsafe: the address of a mapping, the
// page-stride pre-touch over shared memory, and the PROCMAP_QUERY ioctl.

import (
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addrOf returns the address of the first byte of b (0 for an empty slice).
func addrOf(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// touchSink keeps the loads of touchRead observable so the compiler cannot
// drop them.
var touchSink atomic.Uint32

// touchWrite faults in every page of b for writing, one access per page of
// pageSize bytes. Each access is an atomic add of zero to an aligned 32-bit
// word: it makes the kernel allocate the page and map it writable, but it
// never changes the data, even when another process writes the same word at
// the same time. A last page with fewer than 4 bytes of b is read instead
// (a read fault allocates a shared page too). b must start page-aligned (a
// mapping does).
func touchWrite(b []byte, pageSize int) {
	var x uint32
	for off := 0; off < len(b); off += pageSize {
		if off+4 <= len(b) {
			atomic.AddUint32((*uint32)(unsafe.Pointer(&b[off])), 0)
		} else {
			x += uint32(b[off])
		}
	}
	touchSink.Add(x)
}

// touchRead faults in every page of b for reading, one load per page.
func touchRead(b []byte, pageSize int) {
	var x uint32
	for off := 0; off < len(b); off += pageSize {
		x += uint32(b[off])
	}
	touchSink.Add(x)
}

// procmapQuery is struct procmap_query from <linux/fs.h> (Linux 6.11+).
type procmapQuery struct {
	Size        uint64
	QueryFlags  uint64
	QueryAddr   uint64
	VMAStart    uint64
	VMAEnd      uint64
	VMAFlags    uint64
	VMAPageSize uint64
	VMAOffset   uint64
	Inode       uint64
	DevMajor    uint32
	DevMinor    uint32
	VMANameSize uint32
	BuildIDSize uint32
	VMANameAddr uint64
	BuildIDAddr uint64
}

// procmapQueryCmd is PROCMAP_QUERY, _IOWR('f', 17, struct procmap_query).
const procmapQueryCmd = 3<<30 | uintptr(unsafe.Sizeof(procmapQuery{}))<<16 | 'f'<<8 | 17

// vmaPageSizeQuery asks the kernel, through the PROCMAP_QUERY ioctl on
// /proc/self/maps, for the page size of the mapping that covers addr. Kernels
// before 6.11 answer ENOTTY; the caller then falls back to smaps.
func vmaPageSizeQuery(addr uintptr) (int64, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	q := procmapQuery{Size: uint64(unsafe.Sizeof(procmapQuery{})), QueryAddr: uint64(addr)}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), procmapQueryCmd, uintptr(unsafe.Pointer(&q)))
	if errno != 0 {
		return 0, os.NewSyscallError("ioctl PROCMAP_QUERY", errno)
	}
	if q.VMAStart > uint64(addr) || q.VMAEnd <= uint64(addr) {
		return 0, os.NewSyscallError("ioctl PROCMAP_QUERY", unix.ENOENT)
	}
	return int64(q.VMAPageSize), nil
}
