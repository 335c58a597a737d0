//go:build race

package e2e

// raceEnabled: the test binary runs under the race detector, whose
// instrumented checksums are slow; the sample then moves less data.
const raceEnabled = true
