package sem

// Sleeps returns how many times Wait has entered the kernel to sleep on s,
// so tests can prove a blocked Wait does not poll.
func (s *Semaphore) Sleeps() uint64 { return s.sleeps.Load() }

// Image exposes the 32-byte image Create writes, for golden comparisons.
func Image(value uint32) [semSize]byte { return image(value) }

// SetBeforeSleep installs a hook that Wait runs between its last check of
// its context and the closed bit and its entry into the kernel. Call it
// before any Wait on s.
func (s *Semaphore) SetBeforeSleep(f func()) { s.beforeSleep = f }

// SetAfterMap installs a hook that Open runs between mapping a semaphore
// file and its first read of the mapping; nil removes it. Not for use
// while other goroutines open semaphores.
func SetAfterMap(f func(fd int)) { afterMap = f }
