//go:build linux && !netpoll_portable

package netpoll

// portable reports that the tests run against the portable implementation
// (on Linux: go test -tags netpoll_portable).
const portable = false
