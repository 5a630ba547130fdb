package server

// The HTTP answer's body: compressed as the client accepts when it asks with
// enable_http_compression=1, flushed as the result comes, and the summary header.

import (
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// httpEncodings are the response encodings, in the order a client's equal preferences are
// served (ClickHouse's own order).
var httpEncodings = []string{"gzip", "deflate", "br", "zstd", "lz4"}

// responseEncoding picks the Content-Encoding of the answer from Accept-Encoding: the first
// encoding of the header this server writes, "" for none.
func responseEncoding(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
			continue
		}
		if name == "x-gzip" {
			name = "gzip"
		}
		for _, e := range httpEncodings {
			if name == e {
				return e
			}
		}
	}
	return ""
}

// httpBody writes the answer, through an encoder when the response is compressed.
type httpBody struct {
	w   http.ResponseWriter
	enc io.WriteCloser // nil when not compressed
}

// startBody writes the status and headers and returns the body's writer.
func (h *httpRequest) startBody(status int) *httpBody {
	b := &httpBody{w: h.w}
	if h.encoding != "" {
		h.w.Header().Set("Content-Encoding", h.encoding)
		h.w.Header().Add("Vary", "Accept-Encoding")
		b.enc = newEncoder(h.w, h.encoding, h.compressionLevel)
	}
	h.w.WriteHeader(status)
	return b
}

func newEncoder(w io.Writer, encoding string, level int) io.WriteCloser {
	switch encoding {
	case "gzip":
		if level < gzip.HuffmanOnly || level > gzip.BestCompression {
			level = 3
		}
		zw, _ := gzip.NewWriterLevel(w, level)
		return zw
	case "deflate":
		if level < zlib.HuffmanOnly || level > zlib.BestCompression {
			level = 3
		}
		zw, _ := zlib.NewWriterLevel(w, level)
		return zw
	case "br":
		return brotli.NewWriterLevel(w, min(max(level, 0), 11))
	case "zstd":
		zw, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(max(level, 1))))
		return zw
	default: // lz4: the LZ4 frame format, as ClickHouse writes it
		return lz4.NewWriter(w)
	}
}

func (b *httpBody) Write(p []byte) (int, error) {
	if b.enc != nil {
		return b.enc.Write(p)
	}
	return b.w.Write(p)
}

// flush sends what is written so far to the client.
func (b *httpBody) flush() {
	if f, ok := b.enc.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	if f, ok := b.w.(http.Flusher); ok {
		f.Flush()
	}
}

// close ends the encoded stream.
func (b *httpBody) close() {
	if b.enc != nil {
		_ = b.enc.Close()
	}
}

// summary is what X-ClickHouse-Summary reports.
type summary struct {
	readRows, readBytes, writtenRows, writtenBytes, resultRows uint64
	elapsed                                                    time.Duration
}

func summaryOf(r chdb.Result) summary {
	return summary{readRows: r.RowsRead, readBytes: r.BytesRead, writtenRows: r.RowsWritten, writtenBytes: r.BytesWritten,
		resultRows: r.ResultRows, elapsed: r.Elapsed}
}

// json renders the summary as ClickHouse does: every number a string.
func (s summary) json() string {
	q := func(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }
	return fmt.Sprintf(`{"read_rows":%s,"read_bytes":%s,"written_rows":%s,"written_bytes":%s,"total_rows_to_read":"0","result_rows":%s,"result_bytes":"0","elapsed_ns":%s}`,
		q(s.readRows), q(s.readBytes), q(s.writtenRows), q(s.writtenBytes), q(s.resultRows), q(uint64(s.elapsed.Nanoseconds())))
}
