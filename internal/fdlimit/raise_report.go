//go:build unix && !linux && !darwin

package fdlimit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// raise only reports the soft limit: wsgate is neither deployed nor tested
// on the other Unix systems, and raising the limit there would be a guess
// at their rules.
func raise() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("fdlimit: getrlimit: %w", err)
	}
	return uint64(lim.Cur), nil
}
