//go:build linux || darwin

package fdlimit

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func raise() (uint64, error) { return raiseTo(ceilings) }

// raiseTo tries the soft limits ceilings gives for the hard limit, in order,
// and stops at the first that setrlimit accepts. A ceiling at or below the
// current soft limit ends the search: Raise never lowers the limit.
//
// unix.Setrlimit goes through syscall.Setrlimit, which also stops the Go
// runtime from putting the original soft limit back in child processes;
// they inherit the raised one.
func raiseTo(ceilings func(hard uint64) []uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("fdlimit: getrlimit: %w", err)
	}
	var err error
	for _, want := range ceilings(lim.Max) {
		if want <= lim.Cur {
			break
		}
		raised := unix.Rlimit{Cur: want, Max: lim.Max}
		if err = unix.Setrlimit(unix.RLIMIT_NOFILE, &raised); err != nil {
			err = fmt.Errorf("fdlimit: raising the soft open-file limit from %d to %d: %w", lim.Cur, want, err)
			continue
		}
		// Report what is in force rather than what was asked: a kernel may
		// clamp the value instead of refusing it. The limit has changed, so
		// a failure to read it back is no error of Raise's.
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) != nil {
			return want, nil
		}
		return lim.Cur, nil
	}
	return lim.Cur, err
}
