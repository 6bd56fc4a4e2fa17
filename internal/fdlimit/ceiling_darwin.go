package fdlimit

import "golang.org/x/sys/unix"

// openMax is OPEN_MAX from <sys/syslimits.h>. setrlimit(2) says to use
// min(OPEN_MAX, rlim_max) for RLIMIT_NOFILE; it is the fallback when
// kern.maxfilesperproc cannot be read or is refused.
const openMax = 10240

// ceilings returns the hard limit capped at kern.maxfilesperproc, then at
// OPEN_MAX. The hard limit is usually RLIM_INFINITY on macOS, which
// setrlimit refuses as a soft limit, and so is anything above
// kern.maxfilesperproc; older releases refuse anything above OPEN_MAX.
func ceilings(hard uint64) []uint64 {
	var c []uint64
	if n, err := unix.SysctlUint32("kern.maxfilesperproc"); err == nil && n > 0 {
		c = append(c, min(hard, uint64(n)))
	}
	return append(c, min(hard, openMax))
}
