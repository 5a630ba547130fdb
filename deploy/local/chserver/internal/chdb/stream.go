package chdb

// Streamed results: a statement's output read chunk by chunk as the engine produces it.

import (
	"context"
	"strings"
	"unsafe"
)

// Stream starts a query whose output, in format, is read in chunks with Next; the Stream
// must be closed. While it is open, the session runs no other statement.
func (s *Session) Stream(query, format string) (*Stream, error) {
	return s.StreamContext(context.Background(), query, format, nil)
}

// StreamContext is Stream whose query is killed when ctx is done, with params bound as in
// ExecContext.
func (s *Session) StreamContext(ctx context.Context, query, format string, params map[string]string) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := s.e.lib
	marked, st := s.begin(query)
	var res unsafe.Pointer
	if len(params) > 0 {
		p := newParamArrays(params)
		res = l.streamQueryParamsN(s.conn, strData(marked), uintptr(len(marked)), strData(format), uintptr(len(format)),
			p.names, p.nameLens, p.values, p.valueLens, p.count)
	} else {
		res = l.streamQueryN(s.conn, strData(marked), uintptr(len(marked)), strData(format), uintptr(len(format)))
	}
	if res == nil {
		s.end(st)
		return nil, newError("chdb returned no stream")
	}
	if msg := goString(l.resultError(res)); msg != "" {
		l.destroyResult(res)
		s.end(st)
		if strings.Contains(msg, streamingNotSupported) {
			// DESCRIBE and a few others cannot stream; their results are small.
			r, err := s.ExecContext(ctx, query, format, params)
			if err != nil {
				return nil, err
			}
			return &Stream{s: s, whole: r.Data, done: true}, nil
		}
		return nil, newError(msg)
	}
	stream := &Stream{s: s, res: res, st: st}
	stream.stop = context.AfterFunc(ctx, func() { s.killStatement(st) })
	return stream, nil
}

// streamingNotSupported is chDB's message when a statement (DESCRIBE, ...) cannot stream.
const streamingNotSupported = "Streaming query is not supported"

// noActiveStream is chDB's message when a stream is fetched after its query has ended.
const noActiveStream = "No active streaming query"

// Stream is a running query's output.
type Stream struct {
	s     *Session
	res   unsafe.Pointer
	chunk unsafe.Pointer
	whole []byte // the output of a statement run without streaming, returned by the first Next
	done  bool
	st    *statement
	stop  func() bool

	RowsRead, BytesRead uint64
}

// Next returns the next chunk of output, valid until the next call to Next or Close, or nil
// at the end of the result.
func (st *Stream) Next() ([]byte, error) {
	l := st.s.e.lib
	st.freeChunk()
	if st.whole != nil {
		out := st.whole
		st.whole = nil
		return out, nil
	}
	if st.done {
		return nil, nil
	}
	c := l.streamFetch(st.s.conn, st.res)
	if c == nil {
		st.done = true
		return nil, nil
	}
	if msg := goString(l.resultError(c)); msg != "" {
		l.destroyResult(c)
		st.done = true
		if strings.Contains(msg, noActiveStream) {
			// After a chunk that was the whole output of a framed format (JSON's closing
			// brace, CSVWithNames' header), chDB reports this instead of an empty chunk.
			return nil, nil
		}
		return nil, newError(msg)
	}
	st.RowsRead += l.resultStorageRowsRead(c)
	st.BytesRead += l.resultStorageBytesRead(c)
	n := int(l.resultLength(c))
	p := l.resultBuffer(c)
	if n == 0 || p == nil {
		l.destroyResult(c)
		st.done = true
		return nil, nil
	}
	st.chunk = c
	return unsafe.Slice((*byte)(p), n), nil
}

// Kill stops the stream's query from any goroutine; Next then reports code 394.
func (st *Stream) Kill() {
	if st.st != nil {
		st.s.killStatement(st.st)
	}
}

func (st *Stream) freeChunk() {
	if st.chunk != nil {
		st.s.e.lib.destroyResult(st.chunk)
		st.chunk = nil
	}
}

// Close stops the query if it has not finished and frees its memory. An unfinished query is
// killed and its remaining output read and dropped: chDB's own cancel would wait for the next
// block, however long the query takes to produce it.
func (st *Stream) Close() {
	l := st.s.e.lib
	st.freeChunk()
	if st.res == nil {
		return
	}
	if !st.done {
		st.Kill()
		for {
			c, err := st.Next()
			if c == nil || err != nil {
				break
			}
		}
		st.freeChunk()
	}
	l.destroyResult(st.res)
	st.res = nil
	if st.stop != nil {
		st.stop()
	}
	if st.st != nil {
		st.s.end(st.st)
	}
}
