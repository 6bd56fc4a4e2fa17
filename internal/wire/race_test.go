//go:build race

package wire

// raceEnabled: the race detector makes sync.Pool drop items at random and
// makes some closures escape, so allocation counts mean nothing under it.
const raceEnabled = true
