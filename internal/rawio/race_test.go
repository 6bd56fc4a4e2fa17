//go:build race

package rawio

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// the pooled callbacks allocate now and then and counts mean nothing.
const raceEnabled = true
