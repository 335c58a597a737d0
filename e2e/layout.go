package e2e

import "encoding/binary"

// The ring layout an attacker writes over, from ring/testdata/layout.golden
// (TestLayoutMatchesGolden compares them with the file, so a layout change
// cannot leave the attacks aiming at the wrong bytes).
const (
	headerSize     = 768
	descriptorSize = 64
	offSlotStride  = 32 // header.slotStride
	offDescOffset  = 48 // header.descOffset
	offDataOffset  = 56 // header.dataOffset
)

// layoutField is one field of the header or of a descriptor.
type layoutField struct {
	name   string
	offset int
	size   int
}

// headerFields are the header's fields that an attack may target.
var headerFields = []layoutField{
	{"header.magic", 0, 8},
	{"header.version", 8, 4},
	{"header.headerSize", 12, 4},
	{"header.slots", 16, 8},
	{"header.slotSize", 24, 8},
	{"header.slotStride", 32, 8},
	{"header.slotAlign", 40, 8},
	{"header.descOffset", 48, 8},
	{"header.dataOffset", 56, 8},
	{"header.totalSize", 64, 8},
	{"header.flags", 72, 4},
	{"header.ownerUID", 76, 4},
	{"header.streamItems", 80, 8},
	{"header.streamBytes", 88, 8},
	{"header.nameLen", 96, 8},
	{"header.name", 128, 64},
	{"header.end", 192, 8},
	{"header.drained", 200, 8},
	{"header.producer.seq", 256, 8},
	{"header.producer.pid", 264, 4},
	{"header.producer.start", 272, 8},
	{"header.producer.gen", 280, 8},
	{"header.consumer.seq", 320, 8},
	{"header.consumer.pid", 328, 4},
	{"header.consumer.start", 336, 8},
	{"header.consumer.gen", 344, 8},
	{"header.items", 384, 8},
	{"header.bytes", 392, 8},
	{"header.integrity", 400, 8},
	{"header.app", 448, 64},
	{"header.head", 512, 8},
	{"header.tail", 576, 8},
	{"header.consumerWaiting", 640, 4},
	{"header.producerWaiting", 704, 4},
}

// descriptorFields are a slot descriptor's fields.
var descriptorFields = []layoutField{
	{"descriptor.seq", 0, 8},
	{"descriptor.length", 8, 8},
	{"descriptor.crc", 16, 4},
	{"descriptor.flags", 20, 4},
}

// geometryOf reads the descriptor offset, data offset and slot stride from
// a ring's header (before it is attacked).
func geometryOf(mem []byte) (descOff, dataOff, stride int) {
	le := binary.NativeEndian
	return int(le.Uint64(mem[offDescOffset:])), int(le.Uint64(mem[offDataOffset:])), int(le.Uint64(mem[offSlotStride:]))
}
