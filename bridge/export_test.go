package bridge

// SetBeforeEndHook makes every Sender run f as it starts publishing the end
// of its stream (nil: nothing), for tests that hold it there.
func SetBeforeEndHook(f func()) { beforeEndHook = f }
