package shm

import (
	"errors"
	"hash/fnv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestFNV1a32Vectors(t *testing.T) {
	// Published FNV-1a 32-bit test vectors.
	for in, want := range map[string]uint32{"": 0x811c9dc5, "a": 0xe40c292c, "foobar": 0xbf9cf968} {
		if got := fnv1a32(in); got != want {
			t.Errorf("fnv1a32(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestKeyFromHash(t *testing.T) {
	for h, want := range map[uint32]int{0: 1, 0x80000000: 1, 1: 1, 0x80000001: 1, 0xffffffff: 0x7fffffff, 0x12345678: 0x12345678} {
		if got := keyFromHash(h); got != want {
			t.Errorf("keyFromHash(%#x) = %#x, want %#x", h, got, want)
		}
	}
}

// TestKeyForNameProperty checks KeyForName against the standard library's
// FNV-1a on random valid names.
func TestKeyForNameProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.StringMatching(`[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}`).Draw(t, "name")
		key, err := KeyForName(name)
		if err != nil {
			t.Fatalf("KeyForName(%q): %v", name, err)
		}
		h := fnv.New32a()
		h.Write([]byte("shmpc:" + name))
		want := int(h.Sum32() & 0x7fffffff)
		if want == 0 {
			want = 1
		}
		if key != want || key <= 0 {
			t.Fatalf("KeyForName(%q) = %#x, want %#x", name, key, want)
		}
	})
}

func TestValidName(t *testing.T) {
	good := []string{"a", "A-b_c.d", "x.", "0", strings.Repeat("z", 64), "ring-1.2"}
	for _, n := range good {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", ".hidden", strings.Repeat("z", 65), "a/b", "a b", "é", "a\x00", "x:y", "..", "名"}
	for _, n := range bad {
		err := ValidName(n)
		if !errors.Is(err, ErrName) {
			t.Errorf("ValidName(%q) = %v, want ErrName", n, err)
			continue
		}
		mustContain(t, err.Error(), "1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'")
		if _, err := KeyForName(n); !errors.Is(err, ErrName) {
			t.Errorf("KeyForName(%q) error = %v, want ErrName", n, err)
		}
	}
}

// TestValidNameProperty: a name is valid exactly when the rule says so.
func TestValidNameProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.StringN(0, 70, -1).Draw(t, "name")
		ok := len(name) >= 1 && len(name) <= 64 && name[0] != '.'
		for i := 0; ok && i < len(name); i++ {
			c := name[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-", c) >= 0
		}
		if err := ValidName(name); (err == nil) != ok {
			t.Fatalf("ValidName(%q) = %v, rule says valid=%v", name, err, ok)
		}
	})
}

func TestPolicy(t *testing.T) {
	for _, p := range []Policy{Auto, On, Off} {
		got, err := ParsePolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", p.String(), got, err, p)
		}
		var q Policy = 99
		if err := q.Set(p.String()); err != nil || q != p {
			t.Errorf("Set(%q) = %v, policy %v", p.String(), err, q)
		}
	}
	if Policy(0) != Auto {
		t.Error("the zero Policy is not Auto")
	}
	for _, s := range []string{"", "ON", "yes", "true", "1"} {
		_, err := ParsePolicy(s)
		if !errors.Is(err, ErrOptions) {
			t.Errorf("ParsePolicy(%q) error = %v, want ErrOptions", s, err)
		} else {
			mustContain(t, err.Error(), "auto, on or off")
		}
	}
	if s := Policy(7).String(); s != "Policy(7)" {
		t.Errorf("Policy(7).String() = %q", s)
	}
}
