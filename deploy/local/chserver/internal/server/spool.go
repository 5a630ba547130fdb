package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
)

// spool carries a query's output from chDB (the producer, which holds the engine) to the
// connection (the consumer, which writes to a possibly slow client). Chunks stay in memory up
// to memLimit bytes and go to a temporary file beyond that, so the producer never waits for
// the client: the engine is released as soon as chDB has produced the whole result.
type spool struct {
	mu       sync.Mutex
	cond     *sync.Cond
	mem      [][]byte
	memBytes int
	memLimit int
	tmpDir   string

	file      *os.File
	writeOff  int64
	readOff   int64
	fileCount int // chunks in the file not yet read

	done      bool  // producer finished
	err       error // producer's error, reported after the chunks before it
	cancelled bool  // consumer gave up
	kill      func()
	sum       summary
	// rowsRead and bytesRead are what the engine has read so far, for Progress packets.
	rowsRead, bytesRead uint64
}

func newSpool(memLimit int, tmpDir string) *spool {
	s := &spool{memLimit: memLimit, tmpDir: tmpDir}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// fill copies the stream's chunks into the spool in a goroutine that then closes the stream
// and calls release (which gives the session back); the channel is closed when it has. A
// cancel kills the stream's query, even one that has not produced its first block.
func (s *spool) fill(stream *chdb.Stream, release func()) <-chan struct{} {
	s.mu.Lock()
	s.kill = stream.Kill
	cancelled := s.cancelled
	s.mu.Unlock()
	if cancelled {
		stream.Kill()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer release()
		defer stream.Close()
		for {
			chunk, err := stream.Next()
			if err != nil || chunk == nil {
				s.setSummary(chdb.Result{RowsRead: stream.RowsRead, BytesRead: stream.BytesRead})
				s.finish(err)
				return
			}
			s.mu.Lock()
			s.rowsRead, s.bytesRead = stream.RowsRead, stream.BytesRead
			s.mu.Unlock()
			ok, err := s.put(chunk)
			if err != nil {
				s.finish(err)
				return
			}
			if !ok {
				s.finish(context.Canceled)
				return
			}
		}
	}()
	return done
}

// put adds a copy of chunk; it reports false when the consumer has gone.
func (s *spool) put(chunk []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancelled {
		return false, nil
	}
	if s.fileCount == 0 && s.memBytes+len(chunk) <= s.memLimit || s.memBytes == 0 && s.fileCount == 0 && len(s.mem) == 0 {
		s.mem = append(s.mem, append([]byte(nil), chunk...))
		s.memBytes += len(chunk)
		s.cond.Signal()
		return true, nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.tmpDir, "chserver-spool-*")
		if err != nil {
			return false, fmt.Errorf("create spool file: %w", err)
		}
		_ = os.Remove(f.Name()) // the open descriptor keeps it until Close
		s.file = f
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(chunk)))
	if _, err := s.file.WriteAt(n[:], s.writeOff); err != nil {
		return false, fmt.Errorf("write spool file: %w", err)
	}
	if _, err := s.file.WriteAt(chunk, s.writeOff+8); err != nil {
		return false, fmt.Errorf("write spool file: %w", err)
	}
	s.writeOff += 8 + int64(len(chunk))
	s.fileCount++
	s.cond.Signal()
	return true, nil
}

// setSummary records the statement's counters, for X-ClickHouse-Summary.
func (s *spool) setSummary(r chdb.Result) {
	s.mu.Lock()
	s.sum = summaryOf(r)
	s.mu.Unlock()
}

// read is what the engine has read so far.
func (s *spool) read() (rows, bytes uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return max(s.rowsRead, s.sum.readRows), max(s.bytesRead, s.sum.readBytes)
	}
	return s.rowsRead, s.bytesRead
}

// summary is the statement's counters, zero until it has ended.
func (s *spool) summary() summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// finish marks the end of the output, with the producer's error if any.
func (s *spool) finish(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	s.cond.Broadcast()
	s.mu.Unlock()
}

// cancel tells the producer to stop, and kills its query if it is still running.
func (s *spool) cancel() {
	s.mu.Lock()
	first := !s.cancelled
	s.cancelled = true
	kill := s.kill
	done := s.done
	s.cond.Broadcast()
	s.mu.Unlock()
	if first && kill != nil && !done {
		kill()
	}
}

func (s *spool) isCancelled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}

// next waits for the next chunk; it returns nil at the end, with the producer's error.
func (s *spool) next() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.mem) == 0 && s.fileCount == 0 && !s.done && !s.cancelled {
		s.cond.Wait()
	}
	if s.cancelled {
		return nil, context.Canceled
	}
	if len(s.mem) > 0 {
		c := s.mem[0]
		s.mem[0] = nil
		s.mem = s.mem[1:]
		s.memBytes -= len(c)
		return c, nil
	}
	if s.fileCount > 0 {
		var n [8]byte
		if _, err := s.file.ReadAt(n[:], s.readOff); err != nil {
			return nil, fmt.Errorf("read spool file: %w", err)
		}
		c := make([]byte, binary.LittleEndian.Uint64(n[:]))
		if _, err := s.file.ReadAt(c, s.readOff+8); err != nil {
			return nil, fmt.Errorf("read spool file: %w", err)
		}
		s.readOff += 8 + int64(len(c))
		s.fileCount--
		return c, nil
	}
	return nil, s.err
}

// close removes the spool file.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		_ = s.file.Close()
		s.file = nil
	}
}
