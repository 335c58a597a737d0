//go:build race

package sem_test

// raceEnabled reports whether the race detector is on; tests use smaller
// counts under it.
const raceEnabled = true
