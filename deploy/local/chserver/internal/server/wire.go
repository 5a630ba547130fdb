package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/ClickHouse/ch-go/compress"
	"github.com/ClickHouse/ch-go/proto"
)

// maxStringLen bounds every length-prefixed string a client sends (query text included),
// so that a malformed length cannot make the server allocate without limit.
const maxStringLen = 64 << 20

// errProtocol marks input that does not follow the native protocol: the connection is closed.
var errProtocol = errors.New("protocol error")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// wireReader reads client packets: plain on the socket, or through ClickHouse's compressed
// frames for the body of data packets when the query asked for compression.
type wireReader struct {
	raw        *bufio.Reader
	compressed *compress.Reader
	cur        io.Reader
	scratch    []byte
	one        [1]byte
}

func newWireReader(r io.Reader) *wireReader {
	raw := bufio.NewReaderSize(r, 128<<10)
	return &wireReader{raw: raw, compressed: compress.NewReader(raw), cur: raw, scratch: make([]byte, 64<<10)}
}

// setCompressed switches between reading compressed frames and plain bytes.
func (r *wireReader) setCompressed(on bool) {
	if on {
		r.cur = r.compressed
	} else {
		r.cur = r.raw
	}
}

func (r *wireReader) ReadByte() (byte, error) {
	if r.cur == r.raw {
		return r.raw.ReadByte()
	}
	if _, err := io.ReadFull(r.cur, r.one[:]); err != nil {
		return 0, err
	}
	return r.one[0], nil
}

func (r *wireReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, noEOF(err)
	}
	return v, nil
}

func (r *wireReader) readFull(b []byte) error {
	_, err := io.ReadFull(r.cur, b)
	return noEOF(err)
}

func (r *wireReader) uint64le() (uint64, error) {
	if err := r.readFull(r.scratch[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(r.scratch[:8]), nil
}

func (r *wireReader) uint8() (uint8, error) {
	b, err := r.ReadByte()
	return b, noEOF(err)
}

func (r *wireReader) str() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > maxStringLen {
		return "", protocolErrorf("string of %d bytes is too long", n)
	}
	if n == 0 {
		return "", nil
	}
	b := make([]byte, n)
	if err := r.readFull(b); err != nil {
		return "", err
	}
	return string(b), nil
}

// copyN moves n bytes to w (or drops them when w is nil) through the scratch buffer.
func (r *wireReader) copyN(w io.Writer, n uint64) error {
	for n > 0 {
		k := uint64(len(r.scratch))
		if n < k {
			k = n
		}
		if err := r.readFull(r.scratch[:k]); err != nil {
			return err
		}
		if w != nil {
			if _, err := w.Write(r.scratch[:k]); err != nil {
				return err
			}
		}
		n -= k
	}
	return nil
}

// noEOF reports an end of input inside a packet as io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// wireWriter writes server packets to the socket.
type wireWriter struct {
	conn   net.Conn
	w      *bufio.Writer
	buf    proto.Buffer
	frame  []byte
	method compress.Method
	zw     map[compress.Method]*compress.Writer
}

func newWireWriter(conn net.Conn) *wireWriter {
	return &wireWriter{conn: conn, w: bufio.NewWriterSize(conn, 256<<10), zw: map[compress.Method]*compress.Writer{}}
}

// packet writes a small packet built in the proto.Buffer.
func (w *wireWriter) packet(build func(b *proto.Buffer)) error {
	w.buf.Reset()
	build(&w.buf)
	_, err := w.w.Write(w.buf.Buf)
	return err
}

func (w *wireWriter) flush() error { return w.w.Flush() }

// maxFrame is the size of the compressed frames data blocks are cut into, as ClickHouse
// does with max_compress_block_size.
const maxFrame = 1 << 20

// dataPacket writes a Data packet whose block is given in Native format without its
// BlockInfo (as chDB writes it); compressed selects the compressed framing.
func (w *wireWriter) dataPacket(block []byte, compressed bool) error {
	w.buf.Reset()
	proto.ServerCodeData.Encode(&w.buf)
	w.buf.PutString("")
	head := len(w.buf.Buf)
	proto.BlockInfo{BucketNum: -1}.Encode(&w.buf)
	if !compressed {
		if _, err := w.w.Write(w.buf.Buf); err != nil {
			return err
		}
		_, err := w.w.Write(block)
		return err
	}
	if _, err := w.w.Write(w.buf.Buf[:head]); err != nil {
		return err
	}
	w.frame = append(append(w.frame[:0], w.buf.Buf[head:]...), block...)
	zw := w.zw[w.method]
	if zw == nil {
		zw = compress.NewWriter(compress.LevelZero, w.method)
		w.zw[w.method] = zw
	}
	for data := w.frame; len(data) > 0; {
		n := min(len(data), maxFrame)
		if err := zw.Compress(data[:n]); err != nil {
			return fmt.Errorf("compress block: %w", err)
		}
		if _, err := w.w.Write(zw.Data); err != nil {
			return err
		}
		data = data[n:]
	}
	if cap(w.frame) > 8*maxFrame {
		w.frame = nil
	}
	return nil
}
