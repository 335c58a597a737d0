package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/consumer"
)

// DefaultDuplicates is the default duplicate window of a stream the bridge
// creates, and the least it accepts of one that exists: the longest a
// restarted Sender may take to republish what its predecessor had not
// released, and still have the copies dropped by message id.
const DefaultDuplicates = 2 * time.Minute

// Errors a caller acts on; match them with errors.Is.
var (
	// ErrStream: the JetStream stream exists but does not fit the bridge
	// (subjects, storage, duplicate window); the message says what to change.
	ErrStream = errors.New("jetstream stream does not fit the bridge")
	// ErrIntegrity: an item failed its check (the ring's, or the CRC32C
	// carried from the source against the reassembled item); it is never
	// delivered. It is consumer.ErrIntegrity, so one errors.Is covers both.
	ErrIntegrity = consumer.ErrIntegrity
	// ErrProtocol: the messages on the subject contradict each other (a gap
	// in the stream, pieces that disagree): the stream cannot be rebuilt.
	ErrProtocol = errors.New("bridge stream inconsistent")
)

// StreamName is the name of the stream the bridge uses for subject when none
// is given: "SHMPC_" and the subject with every character other than a
// letter, digit, '-' or '_' replaced by '_'.
func StreamName(subject string) string {
	var b strings.Builder
	b.WriteString("SHMPC_")
	for _, r := range subject {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// EnsureStream returns the stream name (StreamName(subject) when name is
// empty), creating it when it is missing (file storage, subject, duplicate
// window dup, DefaultDuplicates when 0), and checking it when it exists:
// it must capture subject, keep its messages in files, and have a duplicate
// window of at least dup. A stream that does not fit is an error matching
// ErrStream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, name, subject string, dup time.Duration) (jetstream.Stream, error) {
	if subject == "" {
		return nil, errors.New("ensure stream: no subject: give one")
	}
	if name == "" {
		name = StreamName(subject)
	}
	if dup <= 0 {
		dup = DefaultDuplicates
	}
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage, Duplicates: dup,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile by the other side
			s, err = js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", name, err)
	}
	cfg := s.CachedInfo().Config
	covered := false
	for _, sub := range cfg.Subjects {
		covered = covered || subjectMatches(sub, subject)
	}
	switch {
	case !covered:
		return nil, fmt.Errorf("%w: stream %s captures %v, not %s: give another -stream or add the subject", ErrStream, name, cfg.Subjects, subject)
	case cfg.Storage != jetstream.FileStorage:
		return nil, fmt.Errorf("%w: stream %s keeps its messages in memory: use a stream with file storage", ErrStream, name)
	case cfg.Duplicates < dup:
		return nil, fmt.Errorf("%w: stream %s has a duplicate window of %v, the bridge needs %v: raise the stream's duplicate window", ErrStream, name, cfg.Duplicates, dup)
	}
	return s, nil
}

// subjectMatches reports whether the subject filter (with * and > wildcards)
// matches the literal subject.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, t := range f {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}
