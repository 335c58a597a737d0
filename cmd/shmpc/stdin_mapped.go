package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
)

// mapWindow is how much of a file on standard input is mapped at a time.
const mapWindow = 256 << 20

// errInputShrank: the file on standard input was truncated while mapped.
var errInputShrank = errors.New("standard input (a regular file) shrank while it was being sent: a fault reading its mapping")

// produceMapped sends standard input when it is a regular file by mapping
// it instead of reading it: each item, a whole slot but for the last, is
// copied from the page cache into the slot and checksummed in the same
// pass (ring.CopyCRC), so the data crosses memory once, where read(2)
// copies it into a buffer first (the kernel's copy) and then into the slot.
// It sends from the file's current offset to its end, looks at the size
// again at the end (a file still growing is followed, as reads would), and
// leaves the offset after what it sent. handled is false, with nothing
// sent, when f is not a regular file or cannot be mapped: then read it.
// A file truncated while mapped faults on the pages it lost: that is
// errInputShrank, after every item before it was sent.
func produceMapped(ctx context.Context, p *producer.Producer, f *os.File, sum *produceSummary) (handled bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, nil
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return false, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil
	}
	off, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		return false, nil
	}
	slot := int64(p.Ring().SlotSize())
	page := int64(os.Getpagesize())
	for first := true; ; first = false {
		if err := unix.Fstat(fd, &st); err != nil {
			return true, fmt.Errorf("stat standard input: %w", err)
		}
		if off >= st.Size {
			return true, nil
		}
		// One window: from off (its page rounded down) up to mapWindow
		// bytes of whole items, or to the end.
		base := off &^ (page - 1)
		n := min(st.Size-off, max(mapWindow/slot, 1)*slot)
		mem, err := unix.Mmap(fd, base, int(off-base+n), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			if first {
				return false, nil // not mappable: read it
			}
			return true, fmt.Errorf("map standard input: %w", err)
		}
		_ = unix.Madvise(mem, unix.MADV_SEQUENTIAL)
		data := mem[off-base:]
		var sent int64
		var sendErr error
		for sent < n && sendErr == nil {
			k := min(slot, n-sent)
			var s producer.Slot
			if s, sendErr = p.Reserve(ctx); sendErr != nil {
				break
			}
			var crc uint32
			if guardFault(func() { crc = ring.CopyCRC(s.Buf, data[sent:sent+k]) }) {
				sendErr = errInputShrank
				break
			}
			if sendErr = p.CommitCRC(int(k), crc); sendErr != nil {
				break
			}
			sent += k
			sum.Items++
			sum.Bytes += uint64(k)
		}
		_ = unix.Munmap(mem)
		off += sent
		if _, err := unix.Seek(fd, off, io.SeekStart); err != nil && sendErr == nil {
			sendErr = fmt.Errorf("seek standard input: %w", err)
		}
		if sendErr != nil {
			return true, sendErr
		}
	}
}
