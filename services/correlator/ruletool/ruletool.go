// Package ruletool lets an analyst check and try correlation rule files without a
// pipeline: it is what `vigiectl rules check` and `vigiectl rules test` run. Check reports
// every problem of the files, each at its line; Test runs the streaming rules among them,
// through the correlator's own engine, over a sample of enriched events, and says what they
// would raise.
package ruletool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Problem is one thing wrong in a rule file. Line is 1-based, 0 when the problem is about
// the file as a whole (it cannot be read, it is empty).
type Problem struct {
	File    string
	Line    int
	Message string
}

// String writes file:line: message (file: message without a line).
func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Message
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
}

// Check validates rule files — each path a file, or a directory whose *.yaml files are
// checked — as the correlator does at start: the JSON Schema (unknown keys, missing or
// mistyped values, durations such as 90s, 10m, 30d), the field catalogue (unknown event
// fields), what each type and mode can evaluate, and unique rule ids across the files. It
// returns every problem found, in file and line order; none means the files load.
func Check(paths []string) []Problem {
	var files []rules.File
	var out []Problem
	for _, p := range paths {
		fs, err := rules.ReadFiles([]string{p})
		if err != nil {
			out = append(out, Problem{File: p, Message: unwrapPath(err)})
			continue
		}
		if len(fs) == 0 {
			out = append(out, Problem{File: p, Message: "no *.yaml rule file in this directory"})
		}
		files = append(files, fs...)
	}
	if _, err := rules.LoadFiles(files); err != nil {
		var ps rules.Problems
		if !errors.As(err, &ps) {
			return append(out, Problem{File: strings.Join(paths, ", "), Message: err.Error()})
		}
		for _, p := range ps {
			msg := p.Message
			if p.Field != "" {
				msg = p.Field + ": " + msg
			}
			out = append(out, Problem{File: p.File, Line: p.Line, Message: msg})
		}
	}
	return out
}

// unwrapPath drops the "read rules: open FILE:" wrapping: the problem names the file.
func unwrapPath(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// maxLine bounds one line of the events file.
const maxLine = 4 << 20

// Test loads the rule files (an error if they do not: run Check), reads enriched events
// (detections.enriched.v1, one JSON object per line, in the order a partition would hold
// them) from events, runs the streaming rules among the files over them through the
// correlator's engine — no Kafka, no ClickHouse — and writes each finding to w: rule,
// device, facilities, window, evidence and explanation (the latest version of each).
// Scheduled rules need ClickHouse's history and rollups: they are listed as not evaluated.
func Test(ctx context.Context, paths []string, events io.Reader, w io.Writer) error {
	files, err := rules.ReadFiles(paths)
	if err != nil {
		return err
	}
	rs, err := rules.LoadFiles(files)
	if err != nil {
		return fmt.Errorf("the rules do not load (rules check lists each problem):\n%w", err)
	}
	ref, err := reference.Load(schemaref.FS)
	if err != nil {
		return err
	}
	eng := stream.NewEngine(rs, ref)
	var found []alert.Alert
	latest := map[string]int{} // alert id -> index in found
	dec := event.NewDecoder()
	sc := bufio.NewScanner(events)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var e event.Enriched
	var out []alert.Alert
	line, n := 0, 0
	for sc.Scan() {
		line++
		if line%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		if err := dec.Enriched(text, &e); err != nil {
			return fmt.Errorf("events line %d: not an enriched event: %w", line, err)
		}
		if e.ObservedAt.IsZero() {
			return fmt.Errorf("events line %d: not an enriched event: observed_at: %w", line, event.ErrMissingField)
		}
		n++
		out = eng.Observe(&e, true, out[:0])
		for _, a := range out {
			if i, ok := latest[a.ID]; ok {
				found[i] = a
				continue
			}
			latest[a.ID] = len(found)
			found = append(found, a)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events line %d: %w", line+1, err)
	}
	return report(w, eng.Rules(), rs, n, found)
}

// report writes the findings and what was and was not evaluated.
func report(w io.Writer, streaming, all []*rules.Rule, events int, found []alert.Alert) error {
	bw := bufio.NewWriter(w)
	for _, a := range found {
		fmt.Fprintf(bw, "%s (%s) device %s", a.Rule, a.Severity, a.GroupKey)
		if a.Version > 1 {
			fmt.Fprintf(bw, ", version %d", a.Version)
		}
		fmt.Fprintf(bw, "\n  facilities:  %s\n", strings.Join(a.Facilities, ", "))
		fmt.Fprintf(bw, "  window:      %s .. %s (evidence %s .. %s)\n", ts(a.WindowStart), ts(a.WindowEnd), ts(a.FirstEvidenceAt), ts(a.LastEvidenceAt))
		fmt.Fprintf(bw, "  evidence:    %d: %s\n", a.EvidenceCount, strings.Join(a.EvidenceIDs, ", "))
		fmt.Fprintf(bw, "  explanation: %s\n", a.Explanation)
	}
	fmt.Fprintf(bw, "%d events, %d %s from %d streaming %s (%s)\n", events, len(found), plural(len(found), "finding", "findings"),
		len(streaming), plural(len(streaming), "rule", "rules"), strings.Join(rules.Names(streaming), ", "))
	var scheduled []*rules.Rule
	for _, r := range all {
		if r.Mode == rules.Scheduled {
			scheduled = append(scheduled, r)
		}
	}
	if len(scheduled) > 0 {
		fmt.Fprintf(bw, "not evaluated: %s (scheduled: needs ClickHouse)\n", strings.Join(rules.Names(scheduled), ", "))
	}
	return bw.Flush()
}

func ts(t time.Time) string { return t.UTC().Format(event.TimeLayout) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
