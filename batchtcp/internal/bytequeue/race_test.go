//go:build race

package bytequeue

const raceEnabled = true
