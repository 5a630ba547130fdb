// Package ruletool lets an analyst check and try correlation rule files without a
// pipeline: it is what `vigiectl rules check` and `vigiectl rules test` run. Check reports
// every problem of the files, each at its line; Test runs the streaming rules among them,
// through the correlator's own engine, over a sample of enriched events, and says what they
// would raise.
package ruletool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/rules"
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
	res, err := Run(ctx, Options{Paths: paths, Events: events})
	if err != nil {
		return err
	}
	return res.WriteFindings(w)
}

// WriteFindings writes each finding (rule, group, facilities, window, evidence,
// explanation), then how many events and findings, and the rules not evaluated.
func (r *Result) WriteFindings(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, a := range r.Findings {
		fmt.Fprintf(bw, "%s (%s) %s %s", a.Rule, a.Severity, r.Rule(a.Rule).groupNoun(), a.GroupKey)
		if a.Version > 1 {
			fmt.Fprintf(bw, ", version %d", a.Version)
		}
		fmt.Fprintf(bw, "\n  facilities:  %s\n", strings.Join(a.Facilities, ", "))
		fmt.Fprintf(bw, "  window:      %s .. %s (evidence %s .. %s)\n", ts(a.WindowStart), ts(a.WindowEnd), ts(a.FirstEvidenceAt), ts(a.LastEvidenceAt))
		fmt.Fprintf(bw, "  evidence:    %d: %s\n", a.EvidenceCount, strings.Join(a.EvidenceIDs, ", "))
		fmt.Fprintf(bw, "  explanation: %s\n", a.Explanation)
	}
	var streaming, scheduled, notEvaluated []string
	for _, x := range r.Rules {
		switch {
		case !x.Evaluated:
			notEvaluated = append(notEvaluated, x.ID)
		case x.Mode == string(rules.Streaming):
			streaming = append(streaming, x.ID)
		default:
			scheduled = append(scheduled, x.ID)
		}
	}
	fmt.Fprintf(bw, "%d events, %d %s from %d streaming %s (%s)", r.Events, len(r.Findings), plural(len(r.Findings), "finding", "findings"),
		len(streaming), plural(len(streaming), "rule", "rules"), strings.Join(streaming, ", "))
	if len(scheduled) > 0 {
		fmt.Fprintf(bw, " and %d scheduled %s (%s)", len(scheduled), plural(len(scheduled), "rule", "rules"), strings.Join(scheduled, ", "))
	}
	if !r.From.IsZero() {
		fmt.Fprintf(bw, ", event time %s .. %s", ts(r.From), ts(r.To))
	}
	fmt.Fprintln(bw)
	byWhy := map[string][]string{}
	var whys []string
	for _, id := range notEvaluated {
		why := r.Rule(id).NotEvaluated
		if byWhy[why] == nil {
			whys = append(whys, why)
		}
		byWhy[why] = append(byWhy[why], id)
	}
	for _, why := range whys {
		fmt.Fprintf(bw, "not evaluated: %s (%s)\n", strings.Join(byWhy[why], ", "), why)
	}
	return bw.Flush()
}

// groupNoun says what the rule's group key is: a device for the streaming rules' key, else
// the group field, or "group" when the key lists field=value pairs.
func (x Rule) groupNoun() string {
	switch {
	case len(x.GroupBy) == 1 && x.GroupBy[0] == "device_key":
		return "device"
	case len(x.GroupBy) == 1:
		return x.GroupBy[0]
	}
	return "group"
}

func ts(t time.Time) string { return t.UTC().Format(event.TimeLayout) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
