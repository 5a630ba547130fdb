package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	schemarules "github.com/vigie/vigie/schemas/rules"
)

// ErrInvalid wraps every error about a rule file's content.
var ErrInvalid = errors.New("invalid rule")

// DefaultMaxEvidence bounds an alert's evidence ids when a rule does not say.
const DefaultMaxEvidence = 20

// LoadDefault loads the rules embedded in the binary (schemas/rules).
func LoadDefault() ([]*Rule, error) { return Load(schemarules.FS) }

// LoadDir loads the rules of a directory (every *.yaml file).
func LoadDir(dir string) ([]*Rule, error) { return Load(os.DirFS(dir)) }

// Load reads every *.yaml file at the root of fsys, validates it against the rule schema
// and compiles it. Errors name the file, line, column and field. Disabled rules are left
// out. Rule ids must be unique.
func Load(fsys fs.FS) ([]*Rule, error) {
	schema, err := schemarules.Compile()
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	sort.Strings(names)
	var out []*Rule
	seen := map[string]string{}
	var errs []error
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read rule %s: %w", name, err)
		}
		r, enabled, err := Parse(name, data, schema)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[r.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: rule %s already defined in %s: %w", name, r.ID, prev, ErrInvalid))
			continue
		}
		seen[r.ID] = name
		if enabled {
			out = append(out, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ruleFile is the YAML form of a rule; the schema has already checked its shape.
type ruleFile struct {
	Rule        string         `yaml:"rule"`
	Title       string         `yaml:"title"`
	Description string         `yaml:"description"`
	Enabled     *bool          `yaml:"enabled"`
	Severity    string         `yaml:"severity"`
	Type        Type           `yaml:"type"`
	Mode        Mode           `yaml:"mode"`
	Source      string         `yaml:"source"`
	Where       map[string]any `yaml:"where"`
	GroupBy     []string       `yaml:"group_by"`
	Window      string         `yaml:"window"`
	Threshold   int            `yaml:"threshold"`
	Distinct    []struct {
		Field string `yaml:"field"`
		Min   int    `yaml:"min"`
	} `yaml:"distinct"`
	History       string    `yaml:"history"`
	First         *stepYAML `yaml:"first"`
	Then          *stepYAML `yaml:"then"`
	Ordered       *bool     `yaml:"ordered"`
	MinGap        string    `yaml:"min_gap"`
	Different     []string  `yaml:"different"`
	MinDistanceKm float64   `yaml:"min_distance_km"`
	Bucket        string    `yaml:"bucket"`
	Baseline      struct {
		Window        string  `yaml:"window"`
		SameHourOfDay bool    `yaml:"same_hour_of_day"`
		MinStddev     float64 `yaml:"min_stddev"`
	} `yaml:"baseline"`
	Stddevs   float64 `yaml:"stddevs"`
	MinCount  int     `yaml:"min_count"`
	MinGroups int     `yaml:"min_groups"`
	Schedule  struct {
		Every    string `yaml:"every"`
		Lateness string `yaml:"lateness"`
	} `yaml:"schedule"`
	UpdateEvery string `yaml:"update_every"`
	MaxEvidence int    `yaml:"max_evidence"`
	Explanation string `yaml:"explanation"`
}

type stepYAML struct {
	Where        map[string]any `yaml:"where"`
	ActiveBefore *struct {
		Within string         `yaml:"within"`
		Same   []string       `yaml:"same"`
		Where  map[string]any `yaml:"where"`
	} `yaml:"active_before"`
	NewTerm *struct {
		Field   string `yaml:"field"`
		History string `yaml:"history"`
		Source  string `yaml:"source"`
	} `yaml:"new_term"`
}

// Parse validates and compiles one rule file. enabled is false when the file says
// enabled: false.
func Parse(name string, data []byte, schema *jsonschema.Schema) (r *Rule, enabled bool, err error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, false, fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
	}
	if len(root.Content) == 0 {
		return nil, false, fmt.Errorf("%s: empty file: %w", name, ErrInvalid)
	}
	doc, err := toJSONValue(root.Content[0])
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
	}
	if err := schema.Validate(doc); err != nil {
		return nil, false, schemaErrors(name, &root, err)
	}
	var f ruleFile
	if err := root.Decode(&f); err != nil {
		return nil, false, fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
	}
	c := compiler{file: name, root: &root}
	r = c.compile(&f)
	if len(c.errs) > 0 {
		return nil, false, errors.Join(c.errs...)
	}
	return r, f.Enabled == nil || *f.Enabled, nil
}

// toJSONValue converts a YAML node into the values encoding/json would produce, which is
// what the JSON Schema validator expects.
func toJSONValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		return toJSONValue(n.Content[0])
	case yaml.AliasNode:
		return toJSONValue(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := toJSONValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toJSONValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q: %w", n.Line, n.Value, err)
			}
			return f, nil
		case "!!bool":
			return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
		case "!!null":
			return nil, nil
		}
		return n.Value, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

var printer = message.NewPrinter(language.English)

// schemaErrors lists the schema violations of a file as file:line:column: field: message,
// one per line, innermost causes only.
func schemaErrors(name string, root *yaml.Node, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%s: %w: %w", name, ErrInvalid, err)
	}
	var lines []string
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		n := nodeAt(root, e.InstanceLocation)
		line := fmt.Sprintf("%s:%d:%d: %s: %s", name, n.Line, n.Column, fieldPath(e.InstanceLocation), e.ErrorKind.LocalizedString(printer))
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	walk(ve)
	return fmt.Errorf("%w:\n  %s", ErrInvalid, strings.Join(lines, "\n  "))
}

// fieldPath writes a JSON pointer as a dotted path (distinct[0].min), or (root).
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

// nodeAt finds the YAML node at a JSON pointer's tokens, or the deepest node on the way.
func nodeAt(root *yaml.Node, tokens []string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, t := range tokens {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == t {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return n
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(t)
			if err != nil || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}

// compiler turns a ruleFile into a Rule, collecting errors that name the field and its
// place in the file.
type compiler struct {
	file string
	root *yaml.Node
	errs []error
}

func (c *compiler) errorf(path string, format string, args ...any) {
	var tokens []string
	for _, p := range strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".") {
		if p != "" {
			tokens = append(tokens, p)
		}
	}
	n := nodeAt(c.root, tokens)
	c.errs = append(c.errs, fmt.Errorf("%s:%d:%d: %s: %s: %w", c.file, n.Line, n.Column, path, fmt.Sprintf(format, args...), ErrInvalid))
}

func (c *compiler) duration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		c.errorf(path, "%v", err)
	}
	return d
}

func (c *compiler) field(path, name string) Field {
	f, ok := Fields[name]
	if !ok {
		c.errorf(path, "unknown field %q (known: %s)", name, knownFields())
	}
	return f
}

func (c *compiler) filter(path string, raw map[string]any) Filter {
	f, err := compileFilter(raw, path)
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("%s: %w: %w", c.file, err, ErrInvalid))
	}
	return f
}

func (c *compiler) compile(f *ruleFile) *Rule {
	r := &Rule{
		ID: f.Rule, File: c.file, Title: f.Title, Description: strings.TrimSpace(f.Description),
		Severity: f.Severity, Type: f.Type, Mode: f.Mode,
		Where:          c.filter("where", f.Where),
		Window:         c.duration("window", f.Window),
		Threshold:      f.Threshold,
		History:        c.duration("history", f.History),
		Ordered:        f.Ordered == nil || *f.Ordered,
		MinGap:         c.duration("min_gap", f.MinGap),
		MinDistanceKm:  f.MinDistanceKm,
		Bucket:         c.duration("bucket", f.Bucket),
		BaselineWindow: c.duration("baseline.window", f.Baseline.Window),
		SameHourOfDay:  f.Baseline.SameHourOfDay,
		MinStddev:      f.Baseline.MinStddev,
		Stddevs:        f.Stddevs,
		MinCount:       max(f.MinCount, 1),
		MinGroups:      f.MinGroups,
		Every:          c.duration("schedule.every", f.Schedule.Every),
		Lateness:       c.duration("schedule.lateness", f.Schedule.Lateness),
		UpdateEvery:    c.duration("update_every", f.UpdateEvery),
		MaxEvidence:    f.MaxEvidence,
		Explanation:    f.Explanation,
	}
	if r.MaxEvidence == 0 {
		r.MaxEvidence = DefaultMaxEvidence
	}
	if r.Window <= 0 {
		c.errorf("window", "must be positive")
	}
	for i, g := range f.GroupBy {
		r.GroupBy = append(r.GroupBy, c.field(fmt.Sprintf("group_by[%d]", i), g))
	}
	for i, d := range f.Distinct {
		r.Distinct = append(r.Distinct, DistinctCount{Field: c.field(fmt.Sprintf("distinct[%d].field", i), d.Field), Min: d.Min})
	}
	for i, d := range f.Different {
		r.Different = append(r.Different, c.field(fmt.Sprintf("different[%d]", i), d))
	}
	if f.First != nil {
		r.First = c.step("first", f.First)
	}
	if f.Then != nil {
		r.Then = c.step("then", f.Then)
	}
	if f.Source != "" {
		r.Source = Sources[f.Source]
	}
	c.checkType(r)
	c.checkMode(r)
	return r
}

func (c *compiler) step(path string, s *stepYAML) Step {
	st := Step{Where: c.filter(path+".where", s.Where)}
	if ab := s.ActiveBefore; ab != nil {
		st.ActiveBefore = &ActiveBefore{Within: c.duration(path+".active_before.within", ab.Within), Where: c.filter(path+".active_before.where", ab.Where)}
		for i, f := range ab.Same {
			st.ActiveBefore.Same = append(st.ActiveBefore.Same, c.field(fmt.Sprintf("%s.active_before.same[%d]", path, i), f))
		}
	}
	if s.NewTerm != nil {
		src := Sources["detections"]
		if s.NewTerm.Source != "" {
			src = Sources[s.NewTerm.Source]
		}
		st.NewTerm = &NewTermStep{
			Field:   c.field(path+".new_term.field", s.NewTerm.Field),
			History: c.duration(path+".new_term.history", s.NewTerm.History),
			Source:  src,
		}
	}
	return st
}

// checkType enforces what the schema cannot say about one rule type.
func (c *compiler) checkType(r *Rule) {
	switch r.Type {
	case Sequence:
		if r.MinGap >= r.Window {
			c.errorf("min_gap", "%s must be shorter than window %s", FormatDuration(r.MinGap), FormatDuration(r.Window))
		}
		if r.MinDistanceKm > 0 && !containsField(r.Different, "facility_id") {
			c.errorf("min_distance_km", "needs different: [facility_id] (a distance is between two facilities)")
		}
	case BaselineThreshold:
		if r.BaselineWindow <= r.Bucket {
			c.errorf("baseline.window", "must be longer than bucket %s", FormatDuration(r.Bucket))
		}
		if r.SameHourOfDay && (time.Hour%r.Bucket != 0 || r.Bucket > time.Hour) {
			c.errorf("bucket", "must divide one hour when baseline.same_hour_of_day is set")
		}
	}
	if r.First.ActiveBefore != nil && len(r.Different) > 0 {
		c.errorf("different", "cannot be combined with first.active_before")
	}
	if r.Then.ActiveBefore != nil {
		c.errorf("then.active_before", "applies to the first step only")
	}
	if r.Type != Sequence && (r.First.Where != nil || r.Then.Where != nil || r.MinGap != 0 || len(r.Different) > 0) {
		c.errorf("type", "first, then, min_gap and different apply to sequence rules only")
	}
	if r.Type != ValueCount && r.Type != NewTerm && len(r.Distinct) > 0 {
		c.errorf("distinct", "applies to value_count and new_term rules only")
	}
}

// checkMode enforces what each evaluation mode can compute.
func (c *compiler) checkMode(r *Rule) {
	switch r.Mode {
	case Streaming:
		if len(r.GroupBy) != 1 || r.GroupBy[0].Name != "device_key" {
			c.errorf("group_by", "streaming rules group by [device_key], the key of detections.enriched.v1, so that one correlator instance sees a group's whole history; evaluate other groupings in scheduled mode")
		}
		switch r.Type {
		case EventCount, ValueCount, Sequence:
		default:
			c.errorf("type", "%s rules need national history: use mode scheduled", r.Type)
		}
		if r.First.NewTerm != nil || r.Then.NewTerm != nil {
			c.errorf("then.new_term", "new_term steps need history in ClickHouse: use mode scheduled")
		}
		if r.First.ActiveBefore != nil {
			c.errorf("first.active_before", "active_before needs other devices' history: use mode scheduled")
		}
		if r.UpdateEvery == 0 {
			r.UpdateEvery = r.Window
		}
	case Scheduled:
		if r.Source == nil {
			return
		}
		if r.Every <= 0 {
			c.errorf("schedule.every", "must be positive")
		}
		used := append(append([]string{}, r.Where.Fields()...), r.First.Where.Fields()...)
		used = append(used, r.Then.Where.Fields()...)
		for _, g := range r.GroupBy {
			used = append(used, g.Name)
		}
		for i, d := range r.Distinct {
			_, col := r.Source.Columns[d.Field.Name]
			if _, agg := r.Source.Distinct[d.Field.Name]; !col && !agg {
				c.errorf(fmt.Sprintf("distinct[%d].field", i), "table %s cannot count distinct %s", r.Source.Name, d.Field.Name)
			}
		}
		for _, name := range used {
			if _, ok := r.Source.Columns[name]; !ok {
				c.errorf("source", "table %s has no field %s: read detections or a rollup that carries it", r.Source.Name, name)
			}
		}
		if r.Source.DayGranularity {
			for _, d := range []struct {
				path string
				v    time.Duration
			}{{"window", r.Window}, {"history", r.History}, {"schedule.every", r.Every}} {
				if d.v%Day != 0 {
					c.errorf(d.path, "%s reads %s, a daily rollup: use whole days", r.ID, r.Source.Name)
				}
			}
		}
		if r.Source.Name == "detections_per_minute" && (r.Every%time.Minute != 0 || r.Bucket%time.Minute != 0) {
			c.errorf("schedule.every", "%s reads a per-minute rollup: use whole minutes", r.ID)
		}
		if r.Type == Sequence {
			if r.Source.Name != "detections" {
				c.errorf("source", "scheduled sequences read detections")
			}
			if nt := r.Then.NewTerm; nt != nil && nt.Source.Name == "device_presence_per_day" &&
				(nt.Field.Name != "device_id" || len(r.GroupBy) != 1 || r.GroupBy[0].Name != "facility_id") {
				c.errorf("then.new_term.source", "device_presence_per_day answers new device_id per facility_id only")
			}
		}
		if r.Type == BaselineThreshold && r.Every != r.Bucket {
			c.errorf("schedule.every", "must equal bucket (each bucket is evaluated once)")
		}
	}
}

func containsField(fs []Field, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Names lists rule ids, for logs.
func Names(rs []*Rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
