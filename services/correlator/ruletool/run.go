package ruletool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Options say what Run evaluates.
type Options struct {
	// Paths are the rule files (or directories of *.yaml files).
	Paths []string
	// Events are enriched events (detections.enriched.v1, one JSON object per line, in a
	// partition's order) for the streaming rules.
	Events io.Reader
}

// Rule is one rule of the files and what Run made of it.
type Rule struct {
	ID, Title, Severity string
	// Mode is streaming or scheduled.
	Mode string
	// GroupBy are the fields of the group key.
	GroupBy []string
	// Evaluated says whether Run evaluated it; NotEvaluated says why not.
	Evaluated    bool
	NotEvaluated string
	// Findings is the number of findings it raised.
	Findings int
	// Needs is the history of a facility's data its claims need (0: none), NeedsWhy how
	// it is derived.
	Needs    time.Duration
	NeedsWhy string
	// Coverage, on a database (scheduled rules): of the Facilities that ever reported,
	// Covered cover Needs at the clock; FirstCovered is the end of the rule's first step
	// some facility covers (zero: none yet).
	Coverage            bool
	Covered, Facilities int
	FirstCovered        time.Time
}

// WarmingUp reports whether the rule needs history that no facility's data covers yet.
func (x Rule) WarmingUp() bool { return x.Coverage && x.Needs > 0 && x.Covered == 0 }

// Result is what the rules raised.
type Result struct {
	Rules []Rule
	// Events is the number of enriched events the streaming rules saw.
	Events int
	// Findings are the latest version of each finding, in the order they were first raised.
	Findings []event.Alert
	// From and To are the event time evaluated on a database (RunDatabase).
	From, To time.Time
}

// Rule returns the rule of id (zero when none).
func (r *Result) Rule(id string) Rule {
	for _, x := range r.Rules {
		if x.ID == id {
			return x
		}
	}
	return Rule{}
}

// IDs lists the rules' ids in file order.
func (r *Result) IDs() []string {
	out := make([]string, len(r.Rules))
	for i, x := range r.Rules {
		out[i] = x.ID
	}
	return out
}

// load loads the rule files, an error naming every problem if they do not load.
func load(paths []string) ([]*rules.Rule, error) {
	files, err := rules.ReadFiles(paths)
	if err != nil {
		return nil, err
	}
	rs, err := rules.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("the rules do not load (rules check lists each problem):\n%w", err)
	}
	return rs, nil
}

// Run loads the rule files (an error if they do not: run Check) and runs the streaming rules
// among them over opt.Events through the correlator's engine — no Kafka, no ClickHouse. The
// scheduled rules need ClickHouse's history and rollups: they are listed as not evaluated.
func Run(ctx context.Context, opt Options) (Result, error) {
	rs, err := load(opt.Paths)
	if err != nil {
		return Result{}, err
	}
	ref, err := reference.Load(schemaref.FS)
	if err != nil {
		return Result{}, err
	}
	eng := stream.NewEngine(rs, ref)
	var c collector
	n, err := observeNDJSON(ctx, eng, opt.Events, &c)
	if err != nil {
		return Result{}, err
	}
	res := Result{Events: n, Findings: c.found}
	for _, r := range rs {
		x := Rule{ID: r.ID, Title: r.Title, Severity: r.Severity, Mode: string(r.Mode), GroupBy: fieldNames(r.GroupBy), Evaluated: r.Mode == rules.Streaming}
		x.Needs, x.NeedsWhy = r.Needs()
		if !x.Evaluated {
			x.NotEvaluated = "scheduled: needs ClickHouse"
		}
		res.Rules = append(res.Rules, x)
	}
	res.count()
	return res, nil
}

// count sets each rule's findings.
func (r *Result) count() {
	n := map[string]int{}
	for _, f := range r.Findings {
		n[f.Rule]++
	}
	for i := range r.Rules {
		r.Rules[i].Findings = n[r.Rules[i].ID]
	}
}

// collector keeps the latest version of each finding, in the order first raised.
type collector struct {
	found  []alert.Alert
	latest map[string]int // alert id -> index in found
}

func (c *collector) add(as []alert.Alert) {
	if c.latest == nil {
		c.latest = map[string]int{}
	}
	for _, a := range as {
		if i, ok := c.latest[a.ID]; ok {
			c.found[i] = a
			continue
		}
		c.latest[a.ID] = len(c.found)
		c.found = append(c.found, a)
	}
}

// observeNDJSON feeds eng the enriched events of r, one per line, and collects what it
// emits; it returns the number of events.
func observeNDJSON(ctx context.Context, eng *stream.Engine, r io.Reader, c *collector) (int, error) {
	dec := event.NewDecoder()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var e event.Enriched
	var out []alert.Alert
	line, n := 0, 0
	for sc.Scan() {
		line++
		if line%1024 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if err := dec.Enriched(text, &e); err != nil {
			return n, fmt.Errorf("events line %d: not an enriched event: %w", line, err)
		}
		if e.ObservedAt.IsZero() {
			return n, fmt.Errorf("events line %d: not an enriched event: observed_at: %w", line, event.ErrMissingField)
		}
		n++
		out = eng.Observe(&e, true, out[:0])
		c.add(out)
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("events line %d: %w", line+1, err)
	}
	return n, nil
}

func fieldNames(fs []rules.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}
