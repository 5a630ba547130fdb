package server

import (
	"fmt"
)

// This file walks blocks in ClickHouse's Native format column by column. Nothing is decoded
// into values: the walk only finds where each column and each block ends, so that chDB's
// output can be cut into one Data packet per block and a client's insert blocks can be
// copied to a file as they arrive.

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
