//go:build !amd64 || purego

package payload

// Without the assembly kernel Fill and Checksum use the portable code.
const haveKernel = false

const kernelMinChecksum = 0

func kernelName() string { return "go" }

func fillKernel(*Generator, []byte, uint64) uint32 { panic("payload: no kernel on this platform") }

func fillKernelCached(*Generator, []byte, uint64) uint32 {
	panic("payload: no kernel on this platform")
}

func checksumKernel([]byte) uint32 { panic("payload: no kernel on this platform") }
