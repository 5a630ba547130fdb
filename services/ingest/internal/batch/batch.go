// Package batch splits the body of a POST /v1/events request into events: NDJSON (one JSON
// object per line) or one JSON array of objects, optionally gzip-compressed, within size and
// count limits. It does not decode the events: each comes out as the bytes the sensor sent,
// with its position, so that one malformed event is reported on its own.
package batch

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// Limits bound what one request may carry.
type Limits struct {
	// MaxBodyBytes bounds the body as decoded (after gzip): a gzip bomb stops here.
	MaxBodyBytes int64
	// MaxEvents bounds the events of one request.
	MaxEvents int
	// MaxEventBytes bounds one event; a longer one is rejected on its own.
	MaxEventBytes int
}

// Errors of a whole request.
var (
	// ErrTooLarge: the decoded body exceeds MaxBodyBytes (HTTP 413).
	ErrTooLarge = errors.New("request body too large")
	// ErrTooManyEvents: more than MaxEvents events (HTTP 413).
	ErrTooManyEvents = errors.New("too many events in one request")
	// ErrUnsupportedMediaType: a Content-Type or Content-Encoding the API does not take (415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrMalformed: the body cannot be split into events at all (HTTP 400), e.g. a JSON
	// array that is not well-formed or bad gzip data.
	ErrMalformed = errors.New("malformed request body")
)

// Errors of one event.
var (
	ErrEventTooLarge = errors.New("event too large")
	ErrNotObject     = errors.New("event is not a JSON object")
)

// Item is one event of the request.
type Item struct {
	// Pos is the 0-based index of the event in the request.
	Pos int
	// Line is the 1-based line of the event in an NDJSON body; 0 in a JSON array.
	Line int
	// Data is the event's JSON, valid until the Body is released.
	Data []byte
	// Err is set when the event cannot be read (too large, not an object); Data may then
	// hold a prefix of it.
	Err error
}

// Body is a request body split into items.
type Body struct {
	Items []Item
	buf   []byte
}

// Cap is the memory the body holds: its buffer's capacity.
func (b *Body) Cap() int64 { return int64(cap(b.buf)) }

// Release gives the body's memory back; its items must not be used after. Calling it again
// does nothing.
func (b *Body) Release() {
	putBuffer(b.buf)
	b.buf, b.Items = nil, nil
}

// Buffers of up to maxPooled bytes, the common bodies, are pooled by size class (powers of
// two from minPooled); larger ones are allocated for their body and left to the collector,
// so that no pool keeps the largest bodies of a burst (sync.Pool drops what it holds only
// after two collections, and an idle process collects every two minutes).
const (
	minPooled = 4 << 10
	maxPooled = 1 << 20
)

var pools [9]sync.Pool // minPooled << i, up to maxPooled

// Capacity is the capacity of the buffer Read uses for a body expected at n bytes (within
// lim.MaxBodyBytes): what a caller that accounts for memory reserves before calling Read.
func Capacity(n int64, lim Limits) int64 {
	n = min(max(n, 0), lim.MaxBodyBytes)
	if n == 0 || n > maxPooled {
		return n
	}
	c := int64(minPooled)
	for c < n {
		c <<= 1
	}
	if c > lim.MaxBodyBytes {
		return n
	}
	return c
}

// class returns the pool of buffers of capacity c, or -1.
func class(c int64) int {
	for i := range pools {
		if minPooled<<i == c {
			return i
		}
	}
	return -1
}

func getBuffer(c int64) []byte {
	if i := class(c); i >= 0 {
		if b, ok := pools[i].Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, c)
}

func putBuffer(b []byte) {
	if i := class(int64(cap(b))); i >= 0 {
		b = b[:0]
		pools[i].Put(&b)
	}
}

// CheckMediaType accepts application/x-ndjson, application/jsonl, application/json (array or
// NDJSON) and application/jsonlines; charset, if given, must be utf-8.
func CheckMediaType(contentType, contentEncoding string) (gzipped bool, err error) {
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip", "x-gzip":
		gzipped = true
	default:
		return false, fmt.Errorf("%w: content-encoding %q (use gzip or none)", ErrUnsupportedMediaType, contentEncoding)
	}
	if contentType == "" {
		return gzipped, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false, fmt.Errorf("%w: content-type %q", ErrUnsupportedMediaType, contentType)
	}
	switch mt {
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines", "application/x-jsonlines", "application/json":
	default:
		return false, fmt.Errorf("%w: content-type %q (use application/x-ndjson or application/json)", ErrUnsupportedMediaType, mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false, fmt.Errorf("%w: charset %q (use utf-8)", ErrUnsupportedMediaType, cs)
	}
	return gzipped, nil
}

// Read reads and splits a body. r should already be bounded on the wire
// (http.MaxBytesReader); lim.MaxBodyBytes bounds it after decompression.
//
// size is the decoded size expected (the Content-Length of a body sent as is, an estimate
// otherwise): the body's buffer starts at Capacity(size, lim), and a longer body grows it
// only once reserve accepted the bytes it adds (reserve may be nil). An error of reserve is
// returned as it is.
func Read(r io.Reader, gzipped bool, lim Limits, size int64, reserve func(n int64) error) (*Body, error) {
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		defer zr.Close()
		r = zr
	}
	buf := getBuffer(Capacity(size, lim))
	for {
		if len(buf) == cap(buf) {
			// Full: one byte more says whether to grow.
			var one [1]byte
			if n, err := io.ReadFull(r, one[:]); n == 0 {
				if errors.Is(err, io.EOF) {
					break
				}
				putBuffer(buf)
				return nil, readError(err)
			}
			if int64(len(buf)) >= lim.MaxBodyBytes {
				putBuffer(buf)
				return nil, ErrTooLarge
			}
			grownCap := Capacity(max(2*int64(cap(buf)), minPooled), lim)
			if reserve != nil {
				if err := reserve(grownCap - int64(cap(buf))); err != nil {
					putBuffer(buf)
					return nil, err
				}
			}
			grown := append(getBuffer(grownCap), buf...)
			putBuffer(buf)
			buf = append(grown, one[0])
			continue
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			putBuffer(buf)
			return nil, readError(err)
		}
	}
	body := &Body{buf: buf}
	if err := Split(buf, lim, &body.Items); err != nil {
		body.Release()
		return nil, err
	}
	return body, nil
}

func readError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return ErrTooLarge
	}
	return fmt.Errorf("%w: read: %w", ErrMalformed, err)
}

// Split splits data into items, appending to *items.
func Split(data []byte, lim Limits, items *[]Item) error {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if rest := bytes.TrimLeft(data, " \t\r\n"); len(rest) > 0 && rest[0] == '[' {
		return splitArray(rest, lim, items)
	}
	return splitLines(data, lim, items)
}

func splitLines(data []byte, lim Limits, items *[]Item) error {
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if len(*items) >= lim.MaxEvents {
			return ErrTooManyEvents
		}
		it := Item{Pos: len(*items), Line: line, Data: l}
		switch {
		case len(l) > lim.MaxEventBytes:
			it.Err, it.Data = ErrEventTooLarge, l[:min(len(l), 256)]
		case l[0] != '{':
			it.Err = ErrNotObject
		}
		*items = append(*items, it)
	}
	return nil
}

func splitArray(data []byte, lim Limits, items *[]Item) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for dec.More() {
		if len(*items) >= lim.MaxEvents {
			return ErrTooManyEvents
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: array element %d: %v", ErrMalformed, len(*items), err)
		}
		it := Item{Pos: len(*items), Data: raw}
		switch {
		case len(raw) > lim.MaxEventBytes:
			it.Err, it.Data = ErrEventTooLarge, raw[:min(len(raw), 256)]
		case raw[0] != '{':
			it.Err = ErrNotObject
		}
		*items = append(*items, it)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON array", ErrMalformed)
	}
	return nil
}
