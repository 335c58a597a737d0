// Package errline joins errors on one line: what ring and sem (which import
// no sibling package) both report when several checks fail at once.
package errline

import "strings"

// joined is errors.Join on one line: the parts are separated by "; ", so a
// message stays one line for a command's error output, and errors.Is and
// errors.As still see every part.
type joined []error

func (e joined) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e joined) Unwrap() []error { return e }

// Join returns nil for no errors, the error itself for one, and otherwise
// an error whose message is the parts' on one line, separated by "; ", and
// which errors.Is and errors.As see through to every part.
func Join(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return joined(errs)
}
