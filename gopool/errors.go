package gopool

import "errors"

// ErrClosed is returned by Schedule and ScheduleTimeout once Close has begun.
var ErrClosed = errors.New("gopool: pool closed")

// ErrScheduleTimeout is returned by ScheduleTimeout when no worker or queue
// slot became free within the given duration. The task was not scheduled.
var ErrScheduleTimeout = errors.New("gopool: schedule timed out")
