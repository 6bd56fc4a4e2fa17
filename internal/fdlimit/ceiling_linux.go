package fdlimit

// ceilings returns the hard limit: Linux lets any process raise its soft
// limit that far, and the hard limit is never RLIM_INFINITY for
// RLIMIT_NOFILE (it is bounded by fs.nr_open).
func ceilings(hard uint64) []uint64 { return []uint64{hard} }
