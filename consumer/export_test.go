package consumer

// SetCheckHook sets a function called as each item's verification begins;
// the function it returns is called as it ends. Tests only, before Open.
func SetCheckHook(f func(seq uint64) func()) (undo func()) {
	checkHook = f
	return func() { checkHook = nil }
}
