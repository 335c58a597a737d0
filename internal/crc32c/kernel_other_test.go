//go:build !amd64 || purego

package crc32c

// whyNot says why kernel i cannot run: only hash/crc32 is built.
func whyNot(Impl) string { return "purego build or not amd64" }
