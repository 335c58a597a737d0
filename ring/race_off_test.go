//go:build !race

package ring

// raceEnabled is true when the race detector is on; tests scale their counts down.
const raceEnabled = false
