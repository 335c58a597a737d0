//go:build !race

package modtest

const raceEnabled = false
