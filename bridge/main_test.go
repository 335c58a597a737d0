package bridge_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shmpc-bridge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestPayloadGolden(t *testing.T) {
	// docs/cli.md: item 0's first 4096 bytes have the CRC32C 0x8efe1124.
	if got := payloadCRC(0, 4096); got != 0x8efe1124 {
		t.Fatalf("payloadCRC(0, 4096) = %#08x, want 0x8efe1124: the test's payload generator is wrong", got)
	}
}
