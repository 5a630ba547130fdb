package server

// Native blocks: one whole block, its header, its string columns, and the serialization
// prefix that depends on the client's revision.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// column is a column's name and type as a block header gives them.
type column struct {
	Name string
	Type string
}

// sliceSource walks a block held in memory.
type sliceSource struct {
	b   []byte
	off int
}

var errShortBlock = errors.New("native block ends early")

func (s *sliceSource) uvarint() (uint64, error) {
	v, n := binary.Uvarint(s.b[s.off:])
	if n <= 0 {
		return 0, errShortBlock
	}
	s.off += n
	return v, nil
}

func (s *sliceSource) uint64le() (uint64, error) {
	if len(s.b)-s.off < 8 {
		return 0, errShortBlock
	}
	v := binary.LittleEndian.Uint64(s.b[s.off:])
	s.off += 8
	return v, nil
}

func (s *sliceSource) skip(n uint64) error {
	if uint64(len(s.b)-s.off) < n {
		return errShortBlock
	}
	s.off += int(n)
	return nil
}

func (s *sliceSource) str() (string, error) {
	n, err := s.uvarint()
	if err != nil {
		return "", err
	}
	if uint64(len(s.b)-s.off) < n {
		return "", errShortBlock
	}
	v := string(s.b[s.off : s.off+int(n)])
	s.off += int(n)
	return v, nil
}

// typeCache keeps parsed types by name: blocks repeat the same few types.
type typeCache map[string]*colType

func (c typeCache) get(name string) (*colType, error) {
	if t, ok := c[name]; ok {
		return t, nil
	}
	t, err := parseType(name)
	if err != nil {
		return nil, err
	}
	if len(c) > 1024 {
		clear(c)
	}
	c[name] = t
	return t, nil
}

// nativeBlock is one block found in a Native buffer.
type nativeBlock struct {
	Columns []column
	Rows    uint64
	Bytes   []byte // the whole block: counts, column headers and data
}

// nextBlock walks the block starting at b and returns it; wantColumns also returns the
// column names and types.
func nextBlock(b []byte, types typeCache, wantColumns bool) (nativeBlock, error) {
	src := &sliceSource{b: b}
	ncols, err := src.uvarint()
	if err != nil {
		return nativeBlock{}, err
	}
	rows, err := src.uvarint()
	if err != nil {
		return nativeBlock{}, err
	}
	if ncols > 1<<16 {
		return nativeBlock{}, fmt.Errorf("block with %d columns", ncols)
	}
	var cols []column
	for range ncols {
		name, err := src.str()
		if err != nil {
			return nativeBlock{}, err
		}
		typ, err := src.str()
		if err != nil {
			return nativeBlock{}, err
		}
		if wantColumns {
			cols = append(cols, column{Name: name, Type: typ})
		}
		t, err := types.get(typ)
		if err != nil {
			return nativeBlock{}, err
		}
		if err := walkColumn(src, t, rows); err != nil {
			return nativeBlock{}, fmt.Errorf("column %s %s: %w", name, typ, err)
		}
	}
	return nativeBlock{Columns: cols, Rows: rows, Bytes: b[:src.off]}, nil
}

// headerBlock encodes a block of no rows with the given columns: the first block the
// server sends for a query's result or an insert's expected columns.
func headerBlock(dst []byte, cols []column) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(cols)))
	dst = binary.AppendUvarint(dst, 0)
	for _, c := range cols {
		dst = binary.AppendUvarint(dst, uint64(len(c.Name)))
		dst = append(dst, c.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(c.Type)))
		dst = append(dst, c.Type...)
	}
	return dst
}

// stringColumns reads the first n String columns of every block of a Native buffer, such as
// the output of DESCRIBE; it returns them row by row.
func stringColumns(b []byte, n int) ([][]string, error) {
	var out [][]string
	for len(b) > 0 {
		src := &sliceSource{b: b}
		ncols, err := src.uvarint()
		if err != nil {
			return nil, err
		}
		rows, err := src.uvarint()
		if err != nil {
			return nil, err
		}
		if int(ncols) < n || rows > uint64(len(b)) {
			return nil, fmt.Errorf("block of %d columns and %d rows", ncols, rows)
		}
		first := len(out)
		for range rows {
			out = append(out, make([]string, n))
		}
		types := typeCache{}
		for c := range int(ncols) {
			if _, err := src.str(); err != nil {
				return nil, err
			}
			typ, err := src.str()
			if err != nil {
				return nil, err
			}
			if c < n && typ == "String" {
				for i := range rows {
					v, err := src.str()
					if err != nil {
						return nil, err
					}
					out[first+int(i)][c] = v
				}
				continue
			}
			t, err := types.get(typ)
			if err != nil {
				return nil, err
			}
			if err := walkColumn(src, t, rows); err != nil {
				return nil, err
			}
		}
		b = b[src.off:]
	}
	return out, nil
}

// minRevisionCustomSerialization is the protocol revision from which each column of a block
// carries a custom-serialization flag after its type.
const minRevisionCustomSerialization = 54454

// appendRevisionBlock appends the first block of b, in chDB's Native format, as the Native
// format of protocol revision rev (the HTTP interface's client_protocol_version): a BlockInfo
// first and, from revision 54454, a custom-serialization flag (none) after each column's
// type. It returns how many bytes of b the block took.
func appendRevisionBlock(dst, b []byte, types typeCache, rev uint64) ([]byte, int, error) {
	src := &sliceSource{b: b}
	ncols, err := src.uvarint()
	if err != nil {
		return dst, 0, err
	}
	rows, err := src.uvarint()
	if err != nil {
		return dst, 0, err
	}
	dst = binary.AppendUvarint(dst, 1) // BlockInfo field 1: is_overflows
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, 2) // field 2: bucket_num, -1
	dst = binary.LittleEndian.AppendUint32(dst, 0xFFFFFFFF)
	dst = binary.AppendUvarint(dst, 0) // end of BlockInfo
	return appendColumns(dst, b, src, types, ncols, rows, rev >= minRevisionCustomSerialization)
}

// appendBlockFlags appends the first block of b, in chDB's Native format, with a
// custom-serialization flag (none) after each column's type, as the native protocol has it
// from revision 54454 (without BlockInfo, which the Data packet carries). It returns how
// many bytes of b the block took.
func appendBlockFlags(dst, b []byte, types typeCache) ([]byte, int, error) {
	src := &sliceSource{b: b}
	ncols, err := src.uvarint()
	if err != nil {
		return dst, 0, err
	}
	rows, err := src.uvarint()
	if err != nil {
		return dst, 0, err
	}
	return appendColumns(dst, b, src, types, ncols, rows, true)
}

// appendColumns appends b up to src's offset (the block's counts), then its columns, each
// with a custom-serialization flag after its type when flags is set.
func appendColumns(dst, b []byte, src *sliceSource, types typeCache, ncols, rows uint64, flags bool) ([]byte, int, error) {
	dst = append(dst, b[:src.off]...)
	for range ncols {
		start := src.off
		if _, err := src.str(); err != nil {
			return dst, 0, err
		}
		typ, err := src.str()
		if err != nil {
			return dst, 0, err
		}
		dst = append(dst, b[start:src.off]...)
		if flags {
			dst = append(dst, 0)
		}
		t, err := types.get(typ)
		if err != nil {
			return dst, 0, err
		}
		start = src.off
		if err := walkColumn(src, t, rows); err != nil {
			return dst, 0, fmt.Errorf("column of type %s: %w", typ, err)
		}
		dst = append(dst, b[start:src.off]...)
	}
	return dst, src.off, nil
}
