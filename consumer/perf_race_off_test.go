//go:build !race

package consumer_test

// perfRace: the race detector is off.
const perfRace = false
