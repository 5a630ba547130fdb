package rules

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vigie/vigie/pkg/event"
)

// Filter is a conjunction of field conditions.
type Filter []Cond

// Cond is one field condition: the value is one of In (when set), none of NotIn, and
// present (non-empty) or absent when Present is set.
type Cond struct {
	Field   Field
	In      []string
	NotIn   []string
	Present *bool
}

// Match reports whether e satisfies every condition.
func (f Filter) Match(e *event.Enriched) bool {
	for i := range f {
		if !f[i].match(f[i].Field.Get(e)) {
			return false
		}
	}
	return true
}

func (c *Cond) match(v string) bool {
	if c.Present != nil && (v != "") != *c.Present {
		return false
	}
	if c.In != nil && !slices.Contains(c.In, v) {
		return false
	}
	if c.NotIn != nil && slices.Contains(c.NotIn, v) {
		return false
	}
	return true
}

// SQL renders the filter as a ClickHouse boolean expression over the columns of src ("1"
// when empty). Values are quoted literals; field names come from the catalogue.
func (f Filter) SQL(src *Source) string {
	if len(f) == 0 {
		return "1"
	}
	parts := make([]string, 0, len(f))
	for _, c := range f {
		col := src.Columns[c.Field.Name]
		if c.Present != nil {
			op := "!="
			if !*c.Present {
				op = "="
			}
			if c.Field.Numeric {
				parts = append(parts, fmt.Sprintf("(%s) %s 0", col, op))
			} else {
				parts = append(parts, fmt.Sprintf("%s %s ''", col, op))
			}
		}
		if c.In != nil {
			parts = append(parts, fmt.Sprintf("(%s) IN (%s)", col, literals(c.Field, c.In)))
		}
		if c.NotIn != nil {
			parts = append(parts, fmt.Sprintf("(%s) NOT IN (%s)", col, literals(c.Field, c.NotIn)))
		}
	}
	return strings.Join(parts, " AND ")
}

// Fields lists the names of the fields the filter reads.
func (f Filter) Fields() []string {
	out := make([]string, 0, len(f))
	for _, c := range f {
		out = append(out, c.Field.Name)
	}
	return out
}

func literals(f Field, vals []string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if f.Numeric {
			out[i] = v // validated as a number at load
		} else {
			out[i] = Quote(v)
		}
	}
	return strings.Join(out, ", ")
}

// Quote returns s as a ClickHouse string literal.
func Quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// filter compiles the YAML form of a filter (field -> scalar | list | {in, not_in, present})
// found at path, sorted by field name so that SQL and evaluation order are stable. A bad
// condition is reported and left out.
func (c *compiler) filter(path string, raw map[string]any) Filter {
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	var out Filter
	for _, name := range names {
		fp := path + "." + name
		field, ok := Fields[name]
		if !ok {
			c.errorf(fp, "unknown field %q (known: %s)", name, knownFields())
			continue
		}
		cond := Cond{Field: field}
		ok = true
		switch v := raw[name].(type) {
		case []any:
			cond.In, ok = c.scalars(field, v, fp)
		case map[string]any:
			if in, isList := v["in"].([]any); isList {
				cond.In, ok = c.scalars(field, in, fp+".in")
			}
			if notIn, isList := v["not_in"].([]any); isList && ok {
				cond.NotIn, ok = c.scalars(field, notIn, fp+".not_in")
			}
			if p, isBool := v["present"].(bool); isBool {
				cond.Present = &p
			}
		default:
			cond.In, ok = c.scalars(field, []any{v}, fp)
		}
		if ok {
			out = append(out, cond)
		}
	}
	return out
}

// scalars renders a condition's values as strings; numeric fields need numbers.
func (c *compiler) scalars(f Field, vals []any, path string) ([]string, bool) {
	out := make([]string, 0, len(vals))
	for i, v := range vals {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case bool:
			s = strconv.FormatBool(x)
		case int:
			s = strconv.Itoa(x)
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			c.errorf(elementPath(path, len(vals), i), "%v is not a string, number or boolean", v)
			return nil, false
		}
		if f.Numeric {
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				c.errorf(elementPath(path, len(vals), i), "%q is not a number (field %s is numeric)", s, f.Name)
				return nil, false
			}
		}
		out = append(out, s)
	}
	return out, true
}

// elementPath is the path of a condition's i-th value: the path itself for a single value.
func elementPath(path string, n, i int) string {
	if n == 1 {
		return path
	}
	return path + "[" + strconv.Itoa(i) + "]"
}

func knownFields() string {
	names := make([]string, 0, len(Fields))
	for n := range Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
