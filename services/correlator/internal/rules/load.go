package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	schemarules "github.com/vigie/vigie/schemas/rules"
)

// DefaultMaxEvidence bounds an alert's evidence ids when a rule does not say.
const DefaultMaxEvidence = 20

// LoadDefault loads the rules embedded in the binary (schemas/rules).
func LoadDefault() ([]*Rule, error) { return Load(schemarules.FS) }

// LoadDir loads the rules of a directory (every *.yaml file).
func LoadDir(dir string) ([]*Rule, error) { return Load(os.DirFS(dir)) }

// Load reads every *.yaml file at the root of fsys, validates it against the rule schema
// and compiles it. Disabled rules are left out; rule ids must be unique. Problems with the
// files' content are returned together as Problems, each naming its file, line, column and
// field.
func Load(fsys fs.FS) ([]*Rule, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read rule %s: %w", name, err)
		}
		files = append(files, File{Name: name, Data: data})
	}
	return LoadFiles(files)
}

// File is a rule file's name (as errors name it) and content.
type File struct {
	Name string
	Data []byte
}

// ReadFiles reads rule files: each path a file, or a directory whose *.yaml files are read
// in name order.
func ReadFiles(paths []string) ([]File, error) {
	var out []File
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read rules: %w", err)
		}
		names := []string{p}
		if st.IsDir() {
			if names, err = filepath.Glob(filepath.Join(p, "*.yaml")); err != nil {
				return nil, fmt.Errorf("list rules in %s: %w", p, err)
			}
			sort.Strings(names)
		}
		for _, name := range names {
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("read rules: %w", err)
			}
			out = append(out, File{Name: name, Data: data})
		}
	}
	return out, nil
}

// LoadFiles validates and compiles rule files, as Load does.
func LoadFiles(files []File) ([]*Rule, error) {
	schema, err := schemarules.Compile()
	if err != nil {
		return nil, err
	}
	var out []*Rule
	seen := map[string]string{}
	var problems Problems
	for _, f := range files {
		r, enabled, err := Parse(f.Name, f.Data, schema)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) {
				return nil, err
			}
			problems = append(problems, ps...)
			continue
		}
		if prev, dup := seen[r.ID]; dup {
			root := parseNode(f.Data)
			n := nodeAt(root, []string{"rule"})
			problems = append(problems, &Problem{File: f.Name, Line: n.Line, Column: n.Column, Field: "rule",
				Message: fmt.Sprintf("rule %s already defined in %s", r.ID, prev)})
			continue
		}
		seen[r.ID] = f.Name
		if enabled {
			out = append(out, r)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return out, nil
}

func parseNode(data []byte) *yaml.Node {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	return &root
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Parse validates and compiles one rule file; its error is Problems. enabled is false when
// the file says enabled: false. The file is checked against the schema and, even when the
// schema finds problems, against what the engines can evaluate (unknown fields, durations,
// mode constraints), so that one run reports every problem it can place.
func Parse(name string, data []byte, schema *jsonschema.Schema) (r *Rule, enabled bool, err error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		p := &Problem{File: name, Message: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Column = 1
		}
		return nil, false, Problems{p}
	}
	if len(root.Content) == 0 {
		return nil, false, Problems{{File: name, Message: "empty file"}}
	}
	doc, err := toJSONValue(root.Content[0])
	if err != nil {
		var p *Problem
		if errors.As(err, &p) {
			p.File = name
			return nil, false, Problems{p}
		}
		return nil, false, Problems{{File: name, Message: err.Error()}}
	}
	var problems Problems
	if err := schema.Validate(doc); err != nil {
		problems = schemaProblems(name, &root, err)
	}
	var f ruleFile
	if err := root.Decode(&f); err != nil && len(problems) == 0 {
		problems = append(problems, &Problem{File: name, Line: 1, Column: 1, Message: err.Error()})
	}
	c := compiler{file: name, root: &root}
	r = c.compileChecked(&f, len(problems) > 0)
	problems = append(problems, placedElsewhere(c.errs, problems)...)
	if len(problems) > 0 {
		return nil, false, sortProblems(problems)
	}
	sum := sha256.Sum256(data)
	r.Digest = hex.EncodeToString(sum[:])
	return r, f.Enabled == nil || *f.Enabled, nil
}

// compileChecked compiles f. A file the schema rejected may lack what compile takes for
// granted: then a panic only means that its problems are those already found.
func (c *compiler) compileChecked(f *ruleFile, schemaFailed bool) (r *Rule) {
	if schemaFailed {
		defer func() {
			if recover() != nil {
				c.errs, r = nil, nil
			}
		}()
	}
	return c.compile(f)
}

// placedElsewhere keeps the problems of ps at a place (line and column) none of known is
// at: the schema already said what is wrong there.
func placedElsewhere(ps, known Problems) Problems {
	at := map[[2]int]bool{}
	for _, p := range known {
		at[[2]int{p.Line, p.Column}] = true
	}
	var out Problems
	for _, p := range ps {
		if !at[[2]int{p.Line, p.Column}] {
			out = append(out, p)
		}
	}
	return out
}

// Names lists rule ids, for logs.
func Names(rs []*Rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
