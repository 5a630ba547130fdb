package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
)

// streamSource walks a client's data block as it arrives on the wire and copies every byte
// it consumes to out (the INSERT's Native file), or drops them when out is nil.
type streamSource struct {
	r   *wireReader
	out *bufio.Writer
	tmp [binary.MaxVarintLen64]byte
}

func (s *streamSource) uvarint() (uint64, error) {
	v, err := s.r.uvarint()
	if err != nil {
		return 0, err
	}
	if s.out != nil {
		_, err = s.out.Write(binary.AppendUvarint(s.tmp[:0], v))
	}
	return v, err
}

func (s *streamSource) uint64le() (uint64, error) {
	v, err := s.r.uint64le()
	if err != nil {
		return 0, err
	}
	if s.out != nil {
		_, err = s.out.Write(binary.LittleEndian.AppendUint64(s.tmp[:0], v))
	}
	return v, err
}

func (s *streamSource) skip(n uint64) error {
	if s.out == nil {
		return s.r.copyN(nil, n)
	}
	return s.r.copyN(s.out, n)
}

func (s *streamSource) str() (string, error) {
	v, err := s.r.str()
	if err != nil {
		return "", err
	}
	if s.out != nil {
		if _, err := s.out.Write(binary.AppendUvarint(s.tmp[:0], uint64(len(v)))); err != nil {
			return "", err
		}
		_, err = s.out.WriteString(v)
	}
	return v, err
}

// readClientBlock reads the block of a client's Data packet (after its table name) and
// copies it, without its BlockInfo, to out in Native format; out may be nil to drop it.
// It returns the block's column and row counts; a block of no columns ends a data stream.
// From protocol revision 54454, each column carries a custom-serialization flag after its
// type, which is read and not copied (only the default serialization is supported).
func readClientBlock(r *wireReader, out *bufio.Writer, types typeCache, revision uint64) (ncols, rows uint64, err error) {
	if err := skipBlockInfo(r); err != nil {
		return 0, 0, err
	}
	if ncols, err = r.uvarint(); err != nil {
		return 0, 0, err
	}
	if rows, err = r.uvarint(); err != nil {
		return 0, 0, err
	}
	if ncols > 1<<16 {
		return 0, 0, protocolErrorf("block with %d columns", ncols)
	}
	if ncols == 0 {
		return 0, rows, nil
	}
	src := &streamSource{r: r}
	if rows > 0 && out != nil {
		src.out = out
		if _, err := out.Write(binary.AppendUvarint(nil, ncols)); err != nil {
			return 0, 0, err
		}
		if _, err := out.Write(binary.AppendUvarint(nil, rows)); err != nil {
			return 0, 0, err
		}
	}
	for range ncols {
		name, err := src.str()
		if err != nil {
			return 0, 0, err
		}
		typ, err := src.str()
		if err != nil {
			return 0, 0, err
		}
		t, err := types.get(typ)
		if err != nil {
			return 0, 0, protocolErrorf("column %s: %v", name, err)
		}
		if revision >= minRevisionCustomSerialization {
			custom, err := r.uint8()
			if err != nil {
				return 0, 0, err
			}
			if custom != 0 {
				return 0, 0, protocolErrorf("column %s: custom (sparse) serialization is not supported", name)
			}
		}
		if rows == 0 {
			// clickhouse-go writes LowCardinality state prefixes even for an empty block.
			err = walkPrefix(src, t)
		} else {
			err = walkColumn(src, t, rows)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("column %s %s: %w", name, typ, err)
		}
	}
	return ncols, rows, nil
}

// skipBlockInfo reads the BlockInfo fields that start a block on the wire.
func skipBlockInfo(r *wireReader) error {
	for {
		field, err := r.uvarint()
		if err != nil {
			return err
		}
		switch field {
		case 0:
			return nil
		case 1:
			if _, err := r.uint8(); err != nil {
				return err
			}
		case 2:
			if err := r.copyN(nil, 4); err != nil {
				return err
			}
		default:
			return protocolErrorf("unknown block info field %d", field)
		}
	}
}
