package bridge

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Headers of a bridge message. Numbers are decimal.
const (
	HeaderStream      = "Shmpc-Stream"       // stream identity: "<ring NAME>-<16 hex digits>"
	HeaderSeq         = "Shmpc-Seq"          // the item's sequence number in the source ring
	HeaderPiece       = "Shmpc-Piece"        // "i/n": piece i (from 0) of n
	HeaderOffset      = "Shmpc-Offset"       // the piece's byte offset in the item
	HeaderLen         = "Shmpc-Len"          // the item's length in bytes
	HeaderCRC         = "Shmpc-Crc32c"       // the item's CRC32C
	HeaderSlots       = "Shmpc-Slots"        // the source ring's slot count (a hint for the receiving ring)
	HeaderSlotSize    = "Shmpc-Slot-Size"    // the source ring's slot size
	HeaderStreamItems = "Shmpc-Stream-Items" // the stream's item count when the source ring records it
	HeaderEnd         = "Shmpc-End"          // on the end message only: the stream's item count
	// HeaderPack is on a pack only: the number k (2 or more) of whole items
	// it carries, Shmpc-Seq and the k-1 after it, their bytes one after
	// another; Shmpc-Len and Shmpc-Crc32c then list the k items' lengths
	// and CRC32Cs, comma separated, and Shmpc-Piece and Shmpc-Offset are
	// absent.
	HeaderPack = "Shmpc-Pack"
)

// maxPieces bounds the piece count a header may claim.
const maxPieces = 1 << 20

// maxPack bounds the item count a pack may claim.
const maxPack = 1024

// errBadHeader marks a message whose headers are not a bridge message's.
var errBadHeader = errors.New("not a bridge message")

// piece is what the headers of one message say.
type piece struct {
	stream string // the whole HeaderStream value
	key    uint64 // its 64-bit key (the hex part)
	end    bool   // the end message; seq is then the item count
	seq    uint64
	index  int
	count  int
	offset int
	length int
	crc    uint32
	slots  int
	slotSz int
	items  uint64 // 0: unknown
	// A pack's items (nil for a piece): their lengths and CRC32Cs, of
	// items seq, seq+1, ...; length and crc are then the first item's.
	lens []int
	crcs []uint32
}

// last is the sequence number of the last item p carries.
func (p piece) last() uint64 {
	if len(p.lens) > 0 {
		return p.seq + uint64(len(p.lens)) - 1
	}
	return p.seq
}

// streamID is the HeaderStream value of ring name's stream with key.
func streamID(name string, key uint64) string { return fmt.Sprintf("%s-%016x", name, key) }

// msgID is the JetStream message id of piece index of item seq.
func msgID(stream string, seq uint64, index int) string {
	return stream + "." + strconv.FormatUint(seq, 10) + "." + strconv.Itoa(index)
}

// packID is the JetStream message id of a pack of k items from seq on.
func packID(stream string, seq uint64, k int) string {
	return stream + "." + strconv.FormatUint(seq, 10) + "+" + strconv.Itoa(k)
}

// endID is the JetStream message id of a stream's end.
func endID(stream string) string { return stream + ".end" }

// parsePiece reads a message's headers; an error matches errBadHeader.
func parsePiece(h nats.Header, dataLen int) (piece, error) {
	var p piece
	bad := func(what string) (piece, error) { return piece{}, fmt.Errorf("%w: %s", errBadHeader, what) }
	p.stream = h.Get(HeaderStream)
	i := strings.LastIndexByte(p.stream, '-')
	if i < 1 || len(p.stream)-i-1 != 16 {
		return bad("stream identity")
	}
	key, err := strconv.ParseUint(p.stream[i+1:], 16, 64)
	if err != nil || key == 0 {
		return bad("stream key")
	}
	p.key = key
	num := func(name string, max uint64) (uint64, bool) {
		v := h.Get(name)
		if v == "" {
			return 0, true
		}
		n, err := strconv.ParseUint(v, 10, 64)
		return n, err == nil && n <= max
	}
	var ok bool
	if v := h.Get(HeaderEnd); v != "" {
		p.end = true
		if p.seq, ok = num(HeaderEnd, 1<<62); !ok || dataLen != 0 {
			return bad("end")
		}
		return p, nil
	}
	if h.Get(HeaderSeq) == "" || h.Get(HeaderLen) == "" || h.Get(HeaderCRC) == "" {
		return bad("missing header")
	}
	if p.seq, ok = num(HeaderSeq, 1<<62); !ok {
		return bad("seq")
	}
	if err := p.geometry(num); err != nil {
		return piece{}, err
	}
	if h.Get(HeaderPack) != "" {
		return p.parsePack(h, dataLen)
	}
	if h.Get(HeaderOffset) == "" {
		return bad("missing header")
	}
	n, ok := num(HeaderLen, 1<<40)
	if !ok {
		return bad("length")
	}
	p.length = int(n)
	if n, ok = num(HeaderOffset, 1<<40); !ok {
		return bad("offset")
	}
	p.offset = int(n)
	if n, ok = num(HeaderCRC, 1<<32-1); !ok {
		return bad("crc32c")
	}
	p.crc = uint32(n)
	idx, cnt, found := strings.Cut(h.Get(HeaderPiece), "/")
	a, err1 := strconv.Atoi(idx)
	b, err2 := strconv.Atoi(cnt)
	if !found || err1 != nil || err2 != nil || b < 1 || b > maxPieces || a < 0 || a >= b {
		return bad("piece")
	}
	p.index, p.count = a, b
	if p.offset+dataLen > p.length {
		return bad("piece beyond the item")
	}
	return p, nil
}

// geometry reads the source ring's geometry and item count, which every
// message but the end carries.
func (p *piece) geometry(num func(string, uint64) (uint64, bool)) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", errBadHeader, what) }
	n, ok := num(HeaderSlots, 1<<20)
	if !ok {
		return bad("slots")
	}
	p.slots = int(n)
	if n, ok = num(HeaderSlotSize, 1<<40); !ok {
		return bad("slot size")
	}
	p.slotSz = int(n)
	if p.items, ok = num(HeaderStreamItems, 1<<62); !ok {
		return bad("stream items")
	}
	return nil
}

// parsePack reads the rest of a pack's headers into p (its seq and
// geometry read).
func (p piece) parsePack(h nats.Header, dataLen int) (piece, error) {
	bad := func(what string) (piece, error) { return piece{}, fmt.Errorf("%w: %s", errBadHeader, what) }
	if h.Get(HeaderPiece) != "" || h.Get(HeaderOffset) != "" {
		return bad("pack with a piece header")
	}
	k, err := strconv.Atoi(h.Get(HeaderPack))
	if err != nil || k < 2 || k > maxPack || p.seq+uint64(k) > 1<<62 {
		return bad("pack count")
	}
	lens := strings.Split(h.Get(HeaderLen), ",")
	crcs := strings.Split(h.Get(HeaderCRC), ",")
	if len(lens) != k || len(crcs) != k {
		return bad("pack lists")
	}
	p.lens, p.crcs = make([]int, k), make([]uint32, k)
	sum := 0
	for i := range k {
		n, err1 := strconv.ParseUint(lens[i], 10, 64)
		c, err2 := strconv.ParseUint(crcs[i], 10, 32)
		if err1 != nil || err2 != nil || n > 1<<40 {
			return bad("pack lists")
		}
		p.lens[i], p.crcs[i] = int(n), uint32(c)
		sum += int(n)
	}
	if sum != dataLen {
		return bad("pack lengths do not add up to its bytes")
	}
	p.index, p.count, p.length, p.crc = 0, 1, p.lens[0], p.crcs[0]
	return p, nil
}
