//go:build !amd64 || purego

package payload

// Without the assembly kernel Fill uses the portable code.
const haveKernel = false

func kernelName() string { return "go" }

func fillKernel(*Generator, []byte, uint64) uint32 { panic("payload: no kernel on this platform") }

func fillKernelCached(*Generator, []byte, uint64) uint32 {
	panic("payload: no kernel on this platform")
}
