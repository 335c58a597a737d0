// Package modtest runs the tests of the repository's other Go modules as part
// of the main module's `go test ./...`. The bridge (bridge/, NATS JetStream)
// is a module of its own, so that the core packages' module requires nothing
// but golang.org/x/sys, and a `./...` pattern does not cross into a nested
// module: TestBridgeModule runs `go test ./...` there.
package modtest
