package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every error about a rule file's content.
var ErrInvalid = errors.New("invalid rule")

// Problem is one thing wrong in a rule file, at its place in the file.
type Problem struct {
	File         string
	Line, Column int    // 1-based; 0 when the problem has no place (the file as a whole)
	Field        string // dotted path of the field (distinct[0].min), "(root)" or empty
	Message      string
}

// Error writes file:line:column: field: message.
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// Unwrap makes every problem an ErrInvalid.
func (p *Problem) Unwrap() error { return ErrInvalid }

// Problems is every problem found in rule files, in file and line order. Load and Parse
// return it as their error; errors.As gives the list back.
type Problems []*Problem

// Error writes one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives each problem, so that errors.Is(err, ErrInvalid) holds.
func (ps Problems) Unwrap() []error {
	out := make([]error, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}

// sortProblems orders problems by file, line and column, keeping the first of those at the
// same place with the same message.
func sortProblems(ps Problems) Problems {
	slices.SortStableFunc(ps, func(a, b *Problem) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return slices.CompactFunc(ps, func(a, b *Problem) bool { return *a == *b })
}

var printer = message.NewPrinter(language.English)

// schemaProblems lists the schema violations of a file, innermost causes only, each at the
// YAML node it is about; an unknown key is reported at the key itself.
func schemaProblems(file string, root *yaml.Node, err error) Problems {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return Problems{{File: file, Message: err.Error()}}
	}
	var out Problems
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
			for _, key := range ap.Properties {
				path := append(slices.Clone(e.InstanceLocation), key)
				k := keyNodeAt(root, path)
				out = append(out, &Problem{File: file, Line: k.Line, Column: k.Column, Field: fieldPath(path), Message: "unknown key"})
			}
			return
		}
		n := nodeAt(root, e.InstanceLocation)
		out = append(out, &Problem{File: file, Line: n.Line, Column: n.Column, Field: fieldPath(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
	}
	walk(ve)
	return out
}

// fieldPath writes a JSON pointer's tokens as a dotted path (distinct[0].min), or (root).
func fieldPath(tokens []string) string {
	if len(tokens) == 0 {
		return "(root)"
	}
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}

// pathTokens splits a dotted path (distinct[0].min) into a JSON pointer's tokens.
func pathTokens(path string) []string {
	var tokens []string
	for _, p := range strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".") {
		if p != "" {
			tokens = append(tokens, p)
		}
	}
	return tokens
}

// nodeAt finds the YAML node at a JSON pointer's tokens, or the deepest node on the way.
func nodeAt(root *yaml.Node, tokens []string) *yaml.Node {
	n, _ := walkNodes(root, tokens)
	return n
}

// keyNodeAt finds the key node of the mapping entry at tokens (its last token a key), or
// the deepest node on the way.
func keyNodeAt(root *yaml.Node, tokens []string) *yaml.Node {
	n, key := walkNodes(root, tokens)
	if key != nil {
		return key
	}
	return n
}

// walkNodes follows tokens from root and returns the node reached (or the deepest on the
// way) and, when the last step was a mapping key, that key's node.
func walkNodes(root *yaml.Node, tokens []string) (node, key *yaml.Node) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, t := range tokens {
		key = nil
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == t {
					key, next = n.Content[i], n.Content[i+1]
				}
			}
			if next == nil {
				return n, nil
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n, nil
			}
			n = n.Content[i]
		default:
			return n, nil
		}
	}
	return n, key
}
