package bridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shmpc/shmpc/bridge"
)

func TestStreamName(t *testing.T) {
	if got := bridge.StreamName("shmpc.frames.*"); got != "SHMPC_shmpc_frames__" {
		t.Fatalf("StreamName = %q", got)
	}
}

// TestEnsureStream creates the stream when missing, accepts it (or one with a
// wildcard subject) when present, and refuses one that does not fit.
func TestEnsureStream(t *testing.T) {
	s := startServer(t, "", 0)
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := bounded(t, 30*time.Second)
	st, err := bridge.EnsureStream(ctx, js, "", "a.b", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Name != "SHMPC_a_b" || cfg.Storage != jetstream.FileStorage || cfg.Duplicates != bridge.DefaultDuplicates {
		t.Fatalf("created %+v", cfg)
	}
	if _, err := bridge.EnsureStream(ctx, js, "", "a.b", 0); err != nil {
		t.Fatalf("again: %v", err)
	}
	for _, c := range []jetstream.StreamConfig{
		{Name: "MEM", Subjects: []string{"m.x"}, Storage: jetstream.MemoryStorage, Duplicates: time.Hour},
		{Name: "DUP", Subjects: []string{"d.x"}, Storage: jetstream.FileStorage, Duplicates: time.Second},
		{Name: "SUBJ", Subjects: []string{"other.>"}, Storage: jetstream.FileStorage, Duplicates: time.Hour},
		{Name: "WILD", Subjects: []string{"w.*"}, Storage: jetstream.FileStorage, Duplicates: time.Hour},
	} {
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
		_, err := bridge.EnsureStream(ctx, js, c.Name, strings.ToLower(c.Name[:1])+".x", 0)
		if c.Name == "WILD" {
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
			continue
		}
		if !errors.Is(err, bridge.ErrStream) {
			t.Errorf("%s: %v, want ErrStream", c.Name, err)
		}
	}
}
