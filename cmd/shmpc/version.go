package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	crcpkg "github.com/shmpc/shmpc/internal/crc32c"
	"github.com/shmpc/shmpc/internal/payload"
)

// cmdVersion prints the module version, the VCS revision it was built
// from, the Go version, and the kernels this CPU uses for the CRC32C and
// the payload (DESIGN's `shmpc version`).
func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	version, revision, modified := "(devel)", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		revision += " (modified)"
	}
	fmt.Fprintf(stdout, "shmpc %s\nrevision %s\n%s %s/%s\ncrc32c kernel %s\npayload kernel %s\n",
		version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH, crcpkg.Kernel(), payload.Kernel())
	return nil
}
