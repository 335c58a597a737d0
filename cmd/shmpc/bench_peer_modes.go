package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/shmpc/shmpc/consumer"
	"github.com/shmpc/shmpc/internal/payload"
	"github.com/shmpc/shmpc/producer"
	"github.com/shmpc/shmpc/ring"
	"github.com/shmpc/shmpc/shm"
)

// apiPiece is the piece size of ring-send -mode pieces: a user writing a
// slot in pieces it checksums while they are in its cache.
const apiPiece = 64 << 10

func peerRingSend(ctx context.Context, name string, slots, slotSize, item int, count uint64, huge shm.Policy, spin, pace time.Duration, stamp bool, mode string) (peerResult, error) {
	var res peerResult
	if item > slotSize {
		return res, usagef("bench peer: -item %d exceeds -slot-size %d", item, slotSize)
	}
	p, err := producer.Open(ctx, name, producer.Options{Slots: slots, SlotSize: slotSize, HugePages: huge,
		Lock: shm.Auto, Advise: true, Pretouch: true, StreamItems: count, StreamBytes: count * uint64(item),
		Spin: spin, Wait: 30 * time.Second, Fresh: true})
	if err != nil {
		return res, err
	}
	defer p.Close()
	res.Pages = p.Pages()
	buf := make([]byte, item)
	if mode != "payload" {
		// The user's own data: one private buffer, filled once.
		payload.FillCached(buf, 0)
	}
	aw := newAllocWindow(count)
	pc := pacer{pace: pace}
	res.StartNS = monoNow()
	for seq := uint64(0); seq < count; seq++ {
		aw.at(seq)
		pc.wait()
		if mode != "payload" {
			if err := apiSend(ctx, p, buf, mode); err != nil {
				return res, err
			}
			res.Items++
			res.Bytes += uint64(item)
			continue
		}
		s, err := p.Reserve(ctx)
		if err != nil {
			return res, err
		}
		var crc uint32
		if stamp {
			// The stamp changes the item, so it is built in a private
			// buffer and checksummed while copied (docs/protocol.md "CRC32C").
			payload.Fill(buf, seq)
			binary.LittleEndian.PutUint64(buf, uint64(monoNow()))
			crc = ring.CopyCRC(s.Buf, buf)
		} else {
			crc = payload.Fill(s.Buf[:item], seq)
		}
		if err := p.CommitCRC(item, crc); err != nil {
			return res, err
		}
		res.Items++
		res.Bytes += uint64(item)
	}
	res.AllocsPerItem = aw.perItem()
	readStatus(&res) // while the ring is still mapped: End removes it
	if err := p.End(context.Background()); err != nil {
		return res, err
	}
	return res, p.Close()
}

// apiSend moves buf into the ring by one of the producer's paths (see
// apiPaths).
func apiSend(ctx context.Context, p *producer.Producer, buf []byte, mode string) error {
	switch mode {
	case "send":
		return p.Send(ctx, buf)
	case "copy-commit":
		s, err := p.Reserve(ctx)
		if err != nil {
			return err
		}
		copy(s.Buf, buf)
		return p.Commit(len(buf))
	case "pieces":
		s, err := p.Reserve(ctx)
		if err != nil {
			return err
		}
		var crc uint32
		for off := 0; off < len(buf); off += apiPiece {
			end := min(off+apiPiece, len(buf))
			crc = ring.CopyUpdateCRC(crc, s.Buf[off:end], buf[off:end])
		}
		return p.CommitCRC(len(buf), crc)
	}
	return fmt.Errorf("bench peer: unknown -mode %q", mode)
}

func peerRingRecv(ctx context.Context, name string, count uint64, spin time.Duration, stamp bool, workers int, copyMode bool) (peerResult, error) {
	var res peerResult
	c, err := consumer.Open(ctx, name, consumer.Options{Workers: workers, Spin: spin, Wait: 30 * time.Second, Copy: copyMode})
	if err != nil {
		return res, err
	}
	defer c.Close()
	res.Pages = c.Pages()
	lat := make([]float64, 0, count)
	aw := newAllocWindow(count)
	var n uint64
	// With more than one worker the handler runs concurrently: the
	// counters are only touched by the item that finishes the count, and
	// latencies are kept only with one worker.
	err = c.Run(ctx, func(seq uint64, data []byte) error {
		if stamp && workers == 1 {
			lat = append(lat, float64(monoNow()-int64(binary.LittleEndian.Uint64(data)))/1e3)
		}
		if workers == 1 {
			n++
			aw.at(n)
			if n == count {
				res.EndNS = monoNow()
			}
		} else if seq == count-1 {
			res.EndNS = monoNow()
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	st := c.Stats()
	res.Items, res.Bytes = st.Items, st.Bytes
	if res.Items != count || st.IntegrityErrors != 0 {
		return res, fmt.Errorf("received %d items of %d, %d integrity errors", res.Items, count, st.IntegrityErrors)
	}
	res.AllocsPerItem = aw.perItem()
	res.LatP50, res.LatP99, res.LatMax = percentiles(lat)
	readStatus(&res) // while the ring is still mapped
	return res, c.Close()
}

const streamHeader = 16 // sequence (8), length (4), CRC32C (4)

func peerStreamSend(ctx context.Context, f *os.File, item int, count uint64, pace time.Duration, stamp bool) (peerResult, error) {
	defer f.Close()
	var res peerResult
	buf := make([]byte, streamHeader+item)
	aw := newAllocWindow(count)
	pc := pacer{pace: pace}
	res.StartNS = monoNow()
	for seq := uint64(0); seq < count; seq++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		aw.at(seq)
		pc.wait()
		data := buf[streamHeader:]
		// Ordinary stores: write() reads the buffer back at once.
		crc := payload.FillCached(data, seq)
		if stamp {
			binary.LittleEndian.PutUint64(data, uint64(monoNow()))
			crc = payload.Checksum(data)
		}
		binary.LittleEndian.PutUint64(buf[0:], seq)
		binary.LittleEndian.PutUint32(buf[8:], uint32(item))
		binary.LittleEndian.PutUint32(buf[12:], crc)
		if _, err := f.Write(buf); err != nil {
			return res, fmt.Errorf("write item %d: %w", seq, err)
		}
		res.Items++
		res.Bytes += uint64(item)
	}
	res.AllocsPerItem = aw.perItem()
	return res, nil
}

func peerStreamRecv(f *os.File, item int, count uint64, stamp bool) (peerResult, error) {
	defer f.Close()
	var res peerResult
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, streamHeader)
	buf := make([]byte, item)
	lat := make([]float64, 0, count)
	aw := newAllocWindow(count)
	for seq := uint64(0); seq < count; seq++ {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return res, fmt.Errorf("read item %d: %w", seq, err)
		}
		if got := binary.LittleEndian.Uint64(hdr); got != seq || int(binary.LittleEndian.Uint32(hdr[8:])) != item {
			return res, fmt.Errorf("item %d: header says item %d of %d bytes", seq, got, binary.LittleEndian.Uint32(hdr[8:]))
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return res, fmt.Errorf("read item %d: %w", seq, err)
		}
		if payload.Checksum(buf) != binary.LittleEndian.Uint32(hdr[12:]) {
			return res, fmt.Errorf("item %d: CRC32C mismatch", seq)
		}
		if stamp {
			lat = append(lat, float64(monoNow()-int64(binary.LittleEndian.Uint64(buf)))/1e3)
		}
		res.Items++
		res.Bytes += uint64(item)
		aw.at(res.Items)
	}
	res.EndNS = monoNow()
	res.AllocsPerItem = aw.perItem()
	res.LatP50, res.LatP99, res.LatMax = percentiles(lat)
	return res, nil
}
