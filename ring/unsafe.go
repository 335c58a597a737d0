package ring

// Every use of package unsafe in ring is in this file: the casts of the shared buffer to
// the typed-atomic layout structs, and the compiler-derived sizes and offsets.

import (
	"sync/atomic"
	"unsafe"
)

const (
	headerSize     = unsafe.Sizeof(header{})
	descriptorSize = uint64(unsafe.Sizeof(descriptor{}))
	wordSize       = unsafe.Sizeof(uint64(0))
)

// Compile-time layout assertions: an index out of range (or a negative constant) stops
// the build when a struct drifts from the sizes the format promises.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(header{})-768]
	_ = [1]struct{}{}[unsafe.Sizeof(descriptor{})-64]
	_ = [1]struct{}{}[unsafe.Sizeof(identityWords{})-CacheLine]
	_ = [1]struct{}{}[unsafe.Offsetof(header{}.head)%CacheLine]
	_ = [1]struct{}{}[unsafe.Offsetof(header{}.tail)%CacheLine]
	_ = [1]struct{}{}[unsafe.Offsetof(header{}.consumerWaiting)%CacheLine]
	_ = [1]struct{}{}[unsafe.Offsetof(header{}.producerWaiting)%CacheLine]
)

// aligned8 reports whether buf starts on an 8-byte boundary, as the atomics require.
func aligned8(buf []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%8 == 0
}

// headerOf casts the start of buf to the header. The caller has checked
// len(buf) >= headerSize and aligned8(buf); the check here turns a violation into a
// panic with a message instead of memory corruption.
func headerOf(buf []byte) *header {
	if uintptr(len(buf)) < headerSize || !aligned8(buf) {
		panic("ring: internal error: headerOf on a short or misaligned buffer")
	}
	return (*header)(unsafe.Pointer(unsafe.SliceData(buf)))
}

// descriptorsOf casts b (8-byte aligned, length a multiple of the descriptor size) to
// the descriptor array.
func descriptorsOf(b []byte) []descriptor {
	n := uint64(len(b)) / descriptorSize
	if n == 0 || n*descriptorSize != uint64(len(b)) || !aligned8(b) {
		panic("ring: internal error: descriptorsOf on a bad region")
	}
	return unsafe.Slice((*descriptor)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// wordsOf casts b (8-byte aligned, length a multiple of 8) to atomic words, so Format
// can zero shared memory with atomic stores.
func wordsOf(b []byte) []atomic.Uint64 {
	n := uintptr(len(b)) / wordSize
	if n*wordSize != uintptr(len(b)) || !aligned8(b) {
		panic("ring: internal error: wordsOf on a bad region")
	}
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// headerFields lists every header field with its compiler-derived offset and size, in
// memory order. The layout test checks it covers every named field (by reflection) and
// pins it in testdata/layout.golden.
func headerFields() []field {
	var h header
	var id identityWords
	idFields := func(prefix string, base uintptr) []field {
		return []field{
			{prefix + ".seq", base + unsafe.Offsetof(id.seq), unsafe.Sizeof(id.seq)},
			{prefix + ".pid", base + unsafe.Offsetof(id.pid), unsafe.Sizeof(id.pid)},
			{prefix + ".start", base + unsafe.Offsetof(id.start), unsafe.Sizeof(id.start)},
			{prefix + ".gen", base + unsafe.Offsetof(id.gen), unsafe.Sizeof(id.gen)},
		}
	}
	fs := []field{
		{"magic", unsafe.Offsetof(h.magic), unsafe.Sizeof(h.magic)},
		{"version", unsafe.Offsetof(h.version), unsafe.Sizeof(h.version)},
		{"headerSize", unsafe.Offsetof(h.headerSize), unsafe.Sizeof(h.headerSize)},
		{"slots", unsafe.Offsetof(h.slots), unsafe.Sizeof(h.slots)},
		{"slotSize", unsafe.Offsetof(h.slotSize), unsafe.Sizeof(h.slotSize)},
		{"slotStride", unsafe.Offsetof(h.slotStride), unsafe.Sizeof(h.slotStride)},
		{"slotAlign", unsafe.Offsetof(h.slotAlign), unsafe.Sizeof(h.slotAlign)},
		{"descOffset", unsafe.Offsetof(h.descOffset), unsafe.Sizeof(h.descOffset)},
		{"dataOffset", unsafe.Offsetof(h.dataOffset), unsafe.Sizeof(h.dataOffset)},
		{"totalSize", unsafe.Offsetof(h.totalSize), unsafe.Sizeof(h.totalSize)},
		{"flags", unsafe.Offsetof(h.flags), unsafe.Sizeof(h.flags)},
		{"ownerUID", unsafe.Offsetof(h.ownerUID), unsafe.Sizeof(h.ownerUID)},
		{"streamItems", unsafe.Offsetof(h.streamItems), unsafe.Sizeof(h.streamItems)},
		{"streamBytes", unsafe.Offsetof(h.streamBytes), unsafe.Sizeof(h.streamBytes)},
		{"nameLen", unsafe.Offsetof(h.nameLen), unsafe.Sizeof(h.nameLen)},
		{"name", unsafe.Offsetof(h.name), unsafe.Sizeof(h.name)},
		{"end", unsafe.Offsetof(h.end), unsafe.Sizeof(h.end)},
		{"drained", unsafe.Offsetof(h.drained), unsafe.Sizeof(h.drained)},
	}
	fs = append(fs, idFields("producer", unsafe.Offsetof(h.producer))...)
	fs = append(fs, idFields("consumer", unsafe.Offsetof(h.consumer))...)
	return append(fs,
		field{"items", unsafe.Offsetof(h.items), unsafe.Sizeof(h.items)},
		field{"bytes", unsafe.Offsetof(h.bytes), unsafe.Sizeof(h.bytes)},
		field{"integrity", unsafe.Offsetof(h.integrity), unsafe.Sizeof(h.integrity)},
		field{"app", unsafe.Offsetof(h.app), unsafe.Sizeof(h.app)},
		field{"head", unsafe.Offsetof(h.head), unsafe.Sizeof(h.head)},
		field{"committedBytes", unsafe.Offsetof(h.committedBytes), unsafe.Sizeof(h.committedBytes)},
		field{"producerSleeps", unsafe.Offsetof(h.producerSleeps), unsafe.Sizeof(h.producerSleeps)},
		field{"producerWakes", unsafe.Offsetof(h.producerWakes), unsafe.Sizeof(h.producerWakes)},
		field{"producerLosses", unsafe.Offsetof(h.producerLosses), unsafe.Sizeof(h.producerLosses)},
		field{"producerLostGen", unsafe.Offsetof(h.producerLostGen), unsafe.Sizeof(h.producerLostGen)},
		field{"tail", unsafe.Offsetof(h.tail), unsafe.Sizeof(h.tail)},
		field{"consumerSleeps", unsafe.Offsetof(h.consumerSleeps), unsafe.Sizeof(h.consumerSleeps)},
		field{"consumerWakes", unsafe.Offsetof(h.consumerWakes), unsafe.Sizeof(h.consumerWakes)},
		field{"consumerLosses", unsafe.Offsetof(h.consumerLosses), unsafe.Sizeof(h.consumerLosses)},
		field{"consumerLostGen", unsafe.Offsetof(h.consumerLostGen), unsafe.Sizeof(h.consumerLostGen)},
		field{"consumerWaiting", unsafe.Offsetof(h.consumerWaiting), unsafe.Sizeof(h.consumerWaiting)},
		field{"producerWaiting", unsafe.Offsetof(h.producerWaiting), unsafe.Sizeof(h.producerWaiting)},
	)
}

// descriptorFields is headerFields for the slot descriptor.
func descriptorFields() []field {
	var d descriptor
	return []field{
		{"seq", unsafe.Offsetof(d.seq), unsafe.Sizeof(d.seq)},
		{"length", unsafe.Offsetof(d.length), unsafe.Sizeof(d.length)},
		{"crc", unsafe.Offsetof(d.crc), unsafe.Sizeof(d.crc)},
		{"flags", unsafe.Offsetof(d.flags), unsafe.Sizeof(d.flags)},
	}
}
