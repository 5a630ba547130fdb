package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file walks blocks in ClickHouse's Native format column by column. Nothing is decoded
// into values: the walk only finds where each column and each block ends, so that chDB's
// output can be cut into one Data packet per block and a client's insert blocks can be
// copied to a file as they arrive.

// errUnsupportedType marks a column type whose layout this walker does not know
// (AggregateFunction states, Dynamic, JSON...).
var errUnsupportedType = errors.New("column type not supported by the block walker")

type typeKind uint8

const (
	kindFixed typeKind = iota
	kindString
	kindNullable
	kindArray
	kindTuple
	kindLowCardinality
)

// colType is a parsed column type: enough of it to walk its serialized bytes.
type colType struct {
	kind  typeKind
	size  uint64     // bytes per row, for kindFixed
	elems []*colType // element type(s) of Nullable, Array, Tuple, LowCardinality
}

var fixedSizes = map[string]uint64{
	"UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "Nothing": 1,
	"UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
	"UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4, "Time": 4,
	"UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
	"UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
	"UInt256": 32, "Int256": 32, "Decimal256": 32,
	"IntervalNanosecond": 8, "IntervalMicrosecond": 8, "IntervalMillisecond": 8, "IntervalSecond": 8,
	"IntervalMinute": 8, "IntervalHour": 8, "IntervalDay": 8, "IntervalWeek": 8, "IntervalMonth": 8,
	"IntervalQuarter": 8, "IntervalYear": 8,
}

// parseType parses a ClickHouse type name such as "Array(Nullable(String))".
func parseType(s string) (*colType, error) {
	s = strings.TrimSpace(s)
	name, args, hasArgs := strings.Cut(s, "(")
	name = strings.TrimSpace(name)
	if hasArgs {
		if !strings.HasSuffix(args, ")") {
			return nil, fmt.Errorf("type %q: unbalanced parentheses", s)
		}
		args = args[:len(args)-1]
	}
	if size, ok := fixedSizes[name]; ok {
		return &colType{kind: kindFixed, size: size}, nil
	}
	switch name {
	case "String", "JSONString":
		return &colType{kind: kindString}, nil
	case "FixedString":
		n, err := strconv.ParseUint(strings.TrimSpace(args), 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("type %q: bad size", s)
		}
		return &colType{kind: kindFixed, size: n}, nil
	case "Decimal":
		parts := splitTypeArgs(args)
		p, err := strconv.Atoi(strings.TrimSpace(parts[0]))
		if err != nil {
			return nil, fmt.Errorf("type %q: bad precision", s)
		}
		switch {
		case p <= 9:
			return &colType{kind: kindFixed, size: 4}, nil
		case p <= 18:
			return &colType{kind: kindFixed, size: 8}, nil
		case p <= 38:
			return &colType{kind: kindFixed, size: 16}, nil
		default:
			return &colType{kind: kindFixed, size: 32}, nil
		}
	case "Point":
		return &colType{kind: kindFixed, size: 16}, nil
	case "Nullable", "Array", "LowCardinality":
		inner, err := parseType(args)
		if err != nil {
			return nil, err
		}
		kind := map[string]typeKind{"Nullable": kindNullable, "Array": kindArray, "LowCardinality": kindLowCardinality}[name]
		return &colType{kind: kind, elems: []*colType{inner}}, nil
	case "SimpleAggregateFunction":
		parts := splitTypeArgs(args)
		if len(parts) < 2 {
			return nil, fmt.Errorf("type %q: bad arguments", s)
		}
		return parseType(strings.Join(parts[1:], ","))
	case "Tuple", "Map", "Nested":
		t := &colType{kind: kindTuple}
		for _, part := range splitTypeArgs(args) {
			elem, err := parseType(stripElementName(part))
			if err != nil {
				return nil, err
			}
			t.elems = append(t.elems, elem)
		}
		if name == "Tuple" {
			return t, nil
		}
		return &colType{kind: kindArray, elems: []*colType{t}}, nil
	case "Ring", "LineString":
		return parseType("Array(Point)")
	case "Polygon", "MultiLineString":
		return parseType("Array(Array(Point))")
	case "MultiPolygon":
		return parseType("Array(Array(Array(Point)))")
	}
	return nil, fmt.Errorf("%w: %s", errUnsupportedType, s)
}

// splitTypeArgs splits type arguments at top-level commas, outside parentheses and quotes.
func splitTypeArgs(s string) []string {
	var parts []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// stripElementName turns "name Type" (a named tuple element) into "Type".
func stripElementName(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if s[0] == '`' || s[0] == '"' {
		if end := strings.IndexByte(s[1:], s[0]); end >= 0 {
			return strings.TrimSpace(s[end+2:])
		}
	}
	head, rest, ok := strings.Cut(s, " ")
	if !ok || strings.ContainsAny(head, "(") {
		return s
	}
	return strings.TrimSpace(rest)
}

// blockSource is where a walk reads bytes from: a chDB output buffer or a client's stream.
type blockSource interface {
	uvarint() (uint64, error)
	uint64le() (uint64, error)
	skip(n uint64) error
	str() (string, error)
}

// walkColumn consumes the bytes of one column of rows rows: state prefixes, then data.
func walkColumn(src blockSource, t *colType, rows uint64) error {
	if rows == 0 {
		return nil
	}
	if err := walkPrefix(src, t); err != nil {
		return err
	}
	return walkData(src, t, rows)
}

// walkPrefix consumes the serialization state prefixes, which come before the column's data
// (for LowCardinality: the key serialization version, wherever it is nested).
func walkPrefix(src blockSource, t *colType) error {
	switch t.kind {
	case kindLowCardinality:
		v, err := src.uint64le()
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("LowCardinality: unknown key serialization version %d", v)
		}
		return nil
	case kindNullable, kindArray, kindTuple:
		for _, e := range t.elems {
			if err := walkPrefix(src, e); err != nil {
				return err
			}
		}
	}
	return nil
}

const (
	lcKeyTypeMask       = 0xff
	lcHasAdditionalKeys = 1 << 9
	lcNeedGlobalDict    = 1 << 8
)

func walkData(src blockSource, t *colType, rows uint64) error {
	if rows == 0 {
		return nil
	}
	switch t.kind {
	case kindFixed:
		if rows > 1<<40/t.size {
			return fmt.Errorf("column of %d rows is too large", rows)
		}
		return src.skip(rows * t.size)
	case kindString:
		for range rows {
			n, err := src.uvarint()
			if err != nil {
				return err
			}
			if err := src.skip(n); err != nil {
				return err
			}
		}
		return nil
	case kindNullable:
		if err := src.skip(rows); err != nil {
			return err
		}
		return walkData(src, t.elems[0], rows)
	case kindArray:
		if rows > 1<<40 {
			return fmt.Errorf("array column of %d rows is too large", rows)
		}
		if err := src.skip((rows - 1) * 8); err != nil {
			return err
		}
		total, err := src.uint64le()
		if err != nil {
			return err
		}
		return walkData(src, t.elems[0], total)
	case kindTuple:
		for _, e := range t.elems {
			if err := walkData(src, e, rows); err != nil {
				return err
			}
		}
		return nil
	case kindLowCardinality:
		return walkLowCardinality(src, t.elems[0], rows)
	}
	return fmt.Errorf("%w: kind %d", errUnsupportedType, t.kind)
}

// walkLowCardinality consumes LowCardinality granules (index type, optional dictionary
// keys, indexes) until rows indexes have been read.
func walkLowCardinality(src blockSource, inner *colType, rows uint64) error {
	dict := inner
	if dict.kind == kindNullable {
		dict = dict.elems[0]
	}
	for rows > 0 {
		indexType, err := src.uint64le()
		if err != nil {
			return err
		}
		if indexType&lcNeedGlobalDict != 0 {
			return fmt.Errorf("%w: LowCardinality with a global dictionary", errUnsupportedType)
		}
		if indexType&lcHasAdditionalKeys != 0 {
			keys, err := src.uint64le()
			if err != nil {
				return err
			}
			if err := walkData(src, dict, keys); err != nil {
				return err
			}
		}
		n, err := src.uint64le()
		if err != nil {
			return err
		}
		if n == 0 || n > rows {
			return fmt.Errorf("LowCardinality: %d indexes for %d rows", n, rows)
		}
		keySize := uint64(1) << (indexType & lcKeyTypeMask)
		if indexType&lcKeyTypeMask > 3 {
			return fmt.Errorf("LowCardinality: bad index type %d", indexType)
		}
		if err := src.skip(n * keySize); err != nil {
			return err
		}
		rows -= n
	}
	return nil
}

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
		if rev >= minRevisionCustomSerialization {
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
