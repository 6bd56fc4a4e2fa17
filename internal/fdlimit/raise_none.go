//go:build !unix

package fdlimit

import "math"

// raise reports no limit: Windows has no per-process open-file limit of
// the RLIMIT_NOFILE kind (handles run out only with memory).
func raise() (uint64, error) { return math.MaxUint64, nil }
