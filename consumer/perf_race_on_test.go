//go:build race

package consumer_test

// perfRace: the race detector is on; allocation counts and timings mean
// nothing then, so the perf tests scale down and skip those checks.
const perfRace = true
