package failures

import (
	"bytes"
	"compress/flate"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

const (
	// MaxPayloadSize is the largest payload (original bytes) Record accepts. Webhook bodies and
	// Service Bus messages the router accepts are far smaller; the bound keeps a Get in memory.
	MaxPayloadSize = 4 << 20

	partSize   = 64 << 10 // Table Storage's limit for one binary property
	mainParts  = 14       // payload properties in the main entity (see TestEntitySize_*)
	chunkParts = 15       // payload properties in one spilled chunk entity

	codecDeflate = "deflate"
	codecNone    = "none"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// storedPayload is a payload as it is kept: possibly compressed, cut into parts.
type storedPayload struct {
	codec  string
	rawLen int
	crc    uint32
	parts  [][]byte
}

// flateWriters keeps compressors: a new one allocates about 1 MB, more than a payload.
var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
	return w
}}

func encodePayload(p []byte) (storedPayload, error) {
	if len(p) > MaxPayloadSize {
		return storedPayload{}, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(p), MaxPayloadSize)
	}
	sp := storedPayload{codec: codecNone, rawLen: len(p), crc: crc32.Checksum(p, crcTable)}
	stored := p
	if len(p) > 0 {
		var buf bytes.Buffer
		buf.Grow(len(p)/2 + 64)
		w := flateWriters.Get().(*flate.Writer)
		w.Reset(&buf)
		_, werr := w.Write(p)
		cerr := w.Close()
		flateWriters.Put(w)
		if werr == nil && cerr == nil && buf.Len() < len(p) {
			sp.codec, stored = codecDeflate, buf.Bytes()
		}
	}
	for len(stored) > 0 {
		n := min(len(stored), partSize)
		sp.parts = append(sp.parts, stored[:n:n])
		stored = stored[n:]
	}
	return sp, nil
}

// decodePayload undoes encodePayload and checks length and checksum, so a payload is either
// byte-exact or an error.
func decodePayload(codec string, rawLen int, crc uint32, stored []byte) ([]byte, error) {
	var p []byte
	switch codec {
	case codecNone, "":
		p = stored
	case codecDeflate:
		r := flate.NewReader(bytes.NewReader(stored))
		defer r.Close()
		var err error
		p, err = io.ReadAll(io.LimitReader(r, int64(rawLen)+1))
		if err != nil {
			return nil, fmt.Errorf("decompress payload: %w", err)
		}
	default:
		return nil, fmt.Errorf("payload codec %q unknown", codec)
	}
	if len(p) != rawLen {
		return nil, fmt.Errorf("payload is %d bytes, expected %d", len(p), rawLen)
	}
	if got := crc32.Checksum(p, crcTable); got != crc {
		return nil, fmt.Errorf("payload checksum %08x, expected %08x", got, crc)
	}
	return p, nil
}

func partName(i int) string { return fmt.Sprintf("payload%02d", i) }
