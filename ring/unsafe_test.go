package ring

import "unsafe"

// sliceAddr returns the address of b's first element, for alignment tests.
func sliceAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
