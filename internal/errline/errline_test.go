package errline

import (
	"errors"
	"io"
	"io/fs"
	"testing"
)

func TestJoin(t *testing.T) {
	if Join(nil) != nil {
		t.Fatal("Join(nil) is not nil")
	}
	if err := Join([]error{io.EOF}); err != io.EOF {
		t.Fatalf("Join of one error = %v, want that error itself", err)
	}
	err := Join([]error{io.EOF, &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}})
	if got, want := err.Error(), "EOF; open x: file does not exist"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	var pe *fs.PathError
	if !errors.Is(err, io.EOF) || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatal("errors.Is/As do not see every part")
	}
}
