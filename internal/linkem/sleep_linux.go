package linkem

import (
	"time"

	"golang.org/x/sys/unix"
)

// sleepShort is the longest wait slept in the kernel (nanosleep) rather
// than on Go's timers.
const sleepShort = 2 * time.Millisecond

// sleep waits d precisely. Go's timers wake an idle process through the
// network poller, whose timeout is in whole milliseconds: a 0.5 ms wait
// took 1.1-1.3 ms, and an emulated 1 ms round trip 2.3-2.6 ms. A short
// wait is slept in a blocking nanosleep instead (the runtime hands the
// thread's other goroutines to another thread meanwhile; no CPU is
// spent), which wakes within tens of microseconds once the thread's timer
// slack is 1 ns (Linux lets a sleep run up to 50 us long by default: an
// emulated 1 ms round trip took 1.27 ms, with 1 ns 1.16 ms, the rest
// being the wake-ups and the proxy's own copies).
func sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if d > sleepShort {
		time.Sleep(d)
		return
	}
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0) // (the calling thread's)
	ts := unix.NsecToTimespec(d.Nanoseconds())
	for unix.Nanosleep(&ts, &ts) == unix.EINTR {
	}
}
