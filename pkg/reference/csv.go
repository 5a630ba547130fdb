package reference

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Error is a problem at one place of one reference file. Line and Column are 1-based. Column
// counts CSV fields (ColumnName is that field's header), except for CSV syntax errors such as
// a stray quote, where it is the byte position in the line as encoding/csv reports it.
type Error struct {
	File       string
	Line       int
	Column     int
	ColumnName string
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	if e.ColumnName != "" {
		fmt.Fprintf(&b, " (column %s)", e.ColumnName)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// table reads a CSV file with a header row, giving access to fields by column name and
// producing errors that point at the file, line and column.
type table struct {
	file   string
	r      *csv.Reader
	header []string
	index  map[string]int
	rec    []string
	line   int
}

func newTable(file string, in io.Reader, required []string) (*table, error) {
	r := csv.NewReader(in)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: file, Line: 1, Err: errors.New("file is empty: a header row is required")}
		}
		return nil, csvError(file, err)
	}
	t := &table{file: file, r: r, header: append([]string(nil), header...), index: map[string]int{}}
	if len(t.header) > 0 {
		t.header[0] = strings.TrimPrefix(t.header[0], "\ufeff")
	}
	for i, name := range t.header {
		name = strings.TrimSpace(name)
		if _, dup := t.index[name]; dup {
			return nil, &Error{File: file, Line: 1, Column: i + 1, ColumnName: name, Err: errors.New("duplicate column in header")}
		}
		t.index[name] = i
	}
	var missing []string
	for _, name := range required {
		if _, ok := t.index[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, &Error{File: file, Line: 1, Err: fmt.Errorf("header lacks required column(s) %s (has %s)",
			strings.Join(missing, ", "), strings.Join(t.header, ","))}
	}
	return t, nil
}

// next reads the next record; it returns false at the end of the file.
func (t *table) next() (bool, error) {
	rec, err := t.r.Read()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, csvError(t.file, err)
	}
	t.rec = rec
	t.line, _ = t.r.FieldPos(0)
	return true, nil
}

// get returns the trimmed value of a column, or "" for an optional column the file lacks.
func (t *table) get(name string) string {
	i, ok := t.index[name]
	if !ok {
		return ""
	}
	return strings.TrimSpace(t.rec[i])
}

// col is the index of a column, -1 when the file lacks it; at reads it by index. Hot loops
// (100,000 TACs) resolve their columns once instead of looking names up per row.
func (t *table) col(name string) int {
	if i, ok := t.index[name]; ok {
		return i
	}
	return -1
}

func (t *table) at(i int) string {
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(t.rec[i])
}

// errAt builds an error pointing at column name of the current record.
func (t *table) errAt(name string, format string, args ...any) *Error {
	e := &Error{File: t.file, Line: t.line, ColumnName: name, Err: fmt.Errorf(format, args...)}
	if i, ok := t.index[name]; ok {
		e.Column = i + 1
		e.Line, _ = t.r.FieldPos(i)
	}
	return e
}

// each calls row for every record after the header, stopping at the first error.
func (t *table) each(row func() error) error {
	for {
		ok, err := t.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := row(); err != nil {
			return err
		}
	}
}

// uniqueID reads the id in column of the current record: required, matching pattern (rule
// says how, for the error), and not already on an earlier line (seen maps id to line).
func (t *table) uniqueID(column string, pattern *regexp.Regexp, rule string, seen map[string]int) (string, error) {
	id, err := t.required(column)
	if err != nil {
		return "", err
	}
	if !pattern.MatchString(id) {
		return "", t.errAt(column, "%q is not %s", id, rule)
	}
	if prev, dup := seen[id]; dup {
		return "", t.errAt(column, "%q is already defined on line %d", id, prev)
	}
	seen[id] = t.line
	return id, nil
}

func (t *table) required(name string) (string, error) {
	v := t.get(name)
	if v == "" {
		return "", t.errAt(name, "value is empty: %s is required", name)
	}
	return v, nil
}

// optFloat parses an optional float column; ok is false when the value is empty.
func (t *table) optFloat(name string, lo, hi float64) (v float64, ok bool, err error) {
	s := t.get(name)
	if s == "" {
		return 0, false, nil
	}
	v, perr := strconv.ParseFloat(s, 64)
	if perr != nil || v < lo || v > hi {
		return 0, false, t.errAt(name, "%q is not a number between %g and %g", s, lo, hi)
	}
	return v, true, nil
}

// optInt parses an optional integer column; empty gives 0.
func (t *table) optInt(name string, lo, hi int) (int, error) {
	s := t.get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, t.errAt(name, "%q is not an integer between %d and %d", s, lo, hi)
	}
	return v, nil
}

// boolAt parses an optional yes/no column by index; empty is false.
func (t *table) boolAt(i int, name string) (bool, error) {
	switch v := t.at(i); v {
	case "", "no", "false", "0":
		return false, nil
	case "yes", "true", "1":
		return true, nil
	default:
		switch strings.ToLower(v) {
		case "no", "false":
			return false, nil
		case "yes", "true":
			return true, nil
		}
		return false, t.errAt(name, "%q is not yes or no (empty means no)", v)
	}
}

func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return &Error{File: file, Err: err}
}
