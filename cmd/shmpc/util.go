package main

import (
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func gibPerSec(bytes uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / (1 << 30) / seconds
}

// formatRate formats bytes moved in seconds as a rate in the unit that
// suits its size: B/s, KiB/s, MiB/s or GiB/s (a slow stream is not 0.00
// GiB/s).
func formatRate(bytes uint64, seconds float64) string {
	if seconds <= 0 {
		return "0 B/s"
	}
	return formatBytesPerSec(float64(bytes) / seconds)
}

// formatBytesPerSec formats a rate in bytes per second, as formatRate.
func formatBytesPerSec(r float64) string {
	switch {
	case r >= 1<<30:
		return fmt.Sprintf("%.2f GiB/s", r/(1<<30))
	case r >= 1<<20:
		return fmt.Sprintf("%.2f MiB/s", r/(1<<20))
	case r >= 1<<10:
		return fmt.Sprintf("%.2f KiB/s", r/(1<<10))
	case r > 0:
		return fmt.Sprintf("%.0f B/s", r)
	}
	return "0 B/s"
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
