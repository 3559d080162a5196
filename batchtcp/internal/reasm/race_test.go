//go:build race

package reasm

// sync.Pool drops items at random under the race detector.
const raceEnabled = true
