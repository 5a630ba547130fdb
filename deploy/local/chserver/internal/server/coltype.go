package server

// Column types parsed into the layout the block walker follows.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

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
