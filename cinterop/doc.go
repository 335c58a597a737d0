// Package cinterop holds the tests that run the C side of shmpc against the Go
// side. The C library and its command shmpc-c (the directory c/ at the top
// of the repository) implement both roles of the same ring from the protocol
// documents alone; these tests build shmpc-c and the Go command shmpc and run
// every pairing of a producer and a consumer across the two languages: C to
// Go, Go to C and C to C, through -stdin and -stdout with the SHA-256 of
// what came out equal to what went in, with -count and -bytes and manifests
// checked against the benchmark payload, with a producer killed mid-stream
// and resumed by one of the other language, and with a C consumer whose Go
// producer removed the ring without ending the stream while a new producer
// took the NAME (it must report the loss, not wait for ever).
//
// The package has no code of its own. The tests skip, saying so, when no C
// compiler is installed, and fail instead when SHMPC_REQUIRE_GCC=1 (as the
// CI sets, where gcc is installed first).
package cinterop
