package shm

import (
	"fmt"
	"math"
)

// MaxNameLen is the longest NAME a ring may have.
const MaxNameLen = 64

// keyPrefix is hashed in front of NAME so that shmpc keys do not coincide
// with FNV-1a keys other programs derive from the bare name.
const keyPrefix = "shmpc:"

// nameRule is quoted by every error about a NAME, so the user learns the rule.
const nameRule = "a ring NAME is 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'"

// ValidName reports whether name is a valid ring NAME (see the README, "Objects
// of one ring"): 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'.
// The error wraps ErrName and states the rule. It is safe for concurrent use.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("check name: empty name: %w: %s", ErrName, nameRule)
	case len(name) > MaxNameLen:
		return fmt.Errorf("check name %.20q...: %d characters: %w: %s", name, len(name), ErrName, nameRule)
	case name[0] == '.':
		return fmt.Errorf("check name %q: starts with '.': %w: %s", name, ErrName, nameRule)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("check name %q: byte %#02x at offset %d: %w: %s", name, name[i], i, ErrName, nameRule)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// KeyForName returns the System V key of the ring called name: FNV-1a-32 of
// "shmpc:"+name with the top bit cleared, and 1 in place of 0 (0 is
// IPC_PRIVATE). The key is always in [1, 2^31-1]. An invalid name gives an
// error wrapping ErrName. Two names can share a key; the ring header records
// the NAME so that such a collision is detected by the caller.
func KeyForName(name string) (int, error) {
	if err := ValidName(name); err != nil {
		return 0, err
	}
	return keyFromHash(fnv1a32(keyPrefix + name)), nil
}

// fnv1a32 is the 32-bit FNV-1a hash (offset basis 2166136261, prime 16777619).
func fnv1a32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// keyFromHash clears the top bit so the key is a positive key_t and maps 0
// (IPC_PRIVATE) to 1.
func keyFromHash(h uint32) int {
	k := int(h & math.MaxInt32)
	if k == 0 {
		k = 1
	}
	return k
}

// checkKey refuses keys that are not a usable key_t: 0 is IPC_PRIVATE (a
// segment that cannot be found again by key) and key_t is 32 bits wide.
func checkKey(key int) error {
	if key == 0 {
		return fmt.Errorf("key 0 is IPC_PRIVATE, which names no segment: %w", ErrKey)
	}
	if key < math.MinInt32 || key > math.MaxInt32 {
		return fmt.Errorf("key %d does not fit in a 32-bit key_t: %w", key, ErrKey)
	}
	return nil
}
