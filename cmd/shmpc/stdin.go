package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// interruptibleStdin returns a reader of f (standard input) whose Read
// returns ctx's error once ctx ends, even while it waits for data that
// never comes (an idle pipe, a terminal nobody types at). A plain read(2)
// on a blocking descriptor cannot be interrupted: SIGTERM would be caught
// and ignored until the next byte arrives.
//
// For a descriptor the Go poller can wait on (pipe, FIFO, socket,
// terminal), it puts f's open file description in non-blocking mode and
// reads through a duplicate descriptor registered with the poller; ctx's
// end sets a past read deadline, which wakes the read. The file status
// flags belong to the open file description, which other processes share
// (the shell, the other commands of a pipeline): restore puts the original
// flags back and closes the duplicate, and must be called once reading is
// over, also on error paths. Reads through r must have returned before
// restore is called.
//
// A process killed by SIGKILL in between leaves the description
// non-blocking (readline, and so an interactive bash, resets it when it
// meets it).
//
// Descriptors the poller cannot take (a regular file, a block device,
// /dev/null) never block for long: r is then f itself, with ctx checked
// only between reads, and restore does nothing.
//
// err reports a descriptor that cannot be inspected or duplicated (fd 0
// closed, say); r is then f and restore does nothing. restore may be
// called more than once.
func interruptibleStdin(ctx context.Context, f *os.File) (r io.Reader, restore func(), err error) {
	noop := func() {}
	// SyscallConn, not Fd: Fd would put f in blocking mode.
	rc, err := f.SyscallConn()
	if err != nil {
		return f, noop, fmt.Errorf("inspect standard input: %w", err)
	}
	var dup int
	var flags int
	var pollable bool
	var inner error
	if err := rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if inner = unix.Fstat(int(fd), &st); inner != nil {
			inner = os.NewSyscallError("fstat", inner)
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFBLK, unix.S_IFDIR:
			return // reads do not wait for a writer
		}
		if flags, inner = unix.FcntlInt(fd, unix.F_GETFL, 0); inner != nil {
			inner = os.NewSyscallError("fcntl F_GETFL", inner)
			return
		}
		if dup, inner = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); inner != nil {
			inner = os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", inner)
			return
		}
		pollable = true
	}); err != nil {
		return f, noop, fmt.Errorf("inspect standard input: %w", err)
	}
	if inner != nil {
		return f, noop, fmt.Errorf("inspect standard input: %w", inner)
	}
	if !pollable {
		return f, noop, nil
	}
	// The duplicate shares the open file description, so its flags are
	// f's: setting O_NONBLOCK here is what the shared description sees.
	setFlags := func(v int) error {
		_, err := unix.FcntlInt(uintptr(dup), unix.F_SETFL, v)
		return err
	}
	if flags&unix.O_NONBLOCK == 0 {
		if err := setFlags(flags | unix.O_NONBLOCK); err != nil {
			_ = unix.Close(dup)
			return f, noop, nil // read blocking, as before
		}
	}
	// NewFile sees O_NONBLOCK and registers the descriptor with the poller.
	nf := os.NewFile(uintptr(dup), f.Name())
	undo := func() {
		// Flags first, while the duplicate still names the description.
		if flags&unix.O_NONBLOCK == 0 {
			_ = setFlags(flags)
		}
		_ = nf.Close()
	}
	if err := nf.SetReadDeadline(time.Time{}); err != nil {
		// Not taken by the poller (epoll refuses it): plain reads, which
		// never wait long on such a descriptor.
		undo()
		return f, noop, nil
	}
	stop := context.AfterFunc(ctx, func() {
		// A deadline in the past wakes a read in progress and fails the
		// next ones with os.ErrDeadlineExceeded.
		_ = nf.SetReadDeadline(time.Unix(1, 0))
	})
	var once sync.Once
	restore = func() {
		once.Do(func() {
			stop()
			undo()
		})
	}
	return &ctxReader{ctx: ctx, f: nf}, restore, nil
}

// ctxReader reads f, whose read deadline is set when ctx ends, and
// reports that end as ctx's error.
type ctxReader struct {
	ctx context.Context
	f   *os.File
}

func (r *ctxReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && r.ctx.Err() != nil {
		return n, r.ctx.Err()
	}
	return n, err
}
