package main

import "runtime/debug"

// guardFault runs f, which reads a segment shmpc did not create (ls and
// gc look at every segment on the machine), and reports whether a read
// faulted: a hugetlb segment created with SHM_NORESERVE raises SIGBUS on a
// page the pool cannot back. Without the guard such a segment would kill
// `shmpc ls` or `shmpc gc`.
func guardFault(f func()) (faulted bool) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			faulted = true
		}
	}(debug.SetPanicOnFault(true))
	f()
	return false
}
