package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/vigie/vigie/pkg/rulequality"
	"github.com/vigie/vigie/services/correlator/ruletool"
)

// errProblems is what rules check returns when a file has problems (listed on stdout).
var errProblems = errors.New("the rule files have problems")

func runRulesCheck(_ context.Context, s streams, args []string) error {
	files, err := parse(s, "rules check", flag.NewFlagSet("rules check", flag.ContinueOnError), nil, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file or directory")
	}
	problems := ruletool.Check(files)
	for _, p := range problems {
		fmt.Fprintln(s.stdout, p.String())
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %d", errProblems, len(problems))
	}
	fmt.Fprintf(s.stdout, "%d rule %s ok\n", len(files), plural(len(files), "path", "paths"))
	return nil
}

func runRulesTest(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	eventsFile := fs.String("events", "", "NDJSON file of enriched events (detections.enriched.v1), one per line; - reads stdin")
	truthFile := fs.String("truth", "", "the simulator's planted summary (simulator run -summary_file): score the findings against its plants and decoys")
	files, err := parse(s, "rules test", fs, nil, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file or directory")
	}
	if *eventsFile == "" {
		return usagef("-events is required")
	}
	var truth *rulequality.Truth
	if *truthFile != "" {
		t, err := rulequality.ReadTruth(*truthFile)
		if err != nil {
			return fmt.Errorf("truth: %w", err)
		}
		truth = &t
	}
	var events io.Reader = s.stdin
	if *eventsFile != "-" {
		f, err := os.Open(*eventsFile)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		defer f.Close()
		events = f
	}
	res, err := ruletool.Run(ctx, ruletool.Options{Paths: files, Events: events})
	if err != nil {
		return err
	}
	if err := res.WriteFindings(s.stdout); err != nil {
		return err
	}
	return writeRuleTable(s.stdout, &res, truth)
}

// writeRuleTable writes a table of the rules: mode and findings; with a truth, the plants
// each found (and how late against its promise), the decoys it kept quiet on, the findings
// about no plant, and the precision of all findings.
func writeRuleTable(w io.Writer, res *ruletool.Result, truth *rulequality.Truth) error {
	mode := rulequality.Column{Header: "mode", Value: func(id string) string {
		x := res.Rule(id)
		switch {
		case x.ID == "":
			return "not in the files"
		case !x.Evaluated:
			return x.Mode + ", not evaluated"
		}
		return x.Mode
	}}
	fmt.Fprintln(w)
	if truth != nil {
		rep := rulequality.Score(res.IDs(), *truth, res.Findings)
		return rep.WriteTable(w, mode)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMODE\tFINDINGS")
	for _, x := range res.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", x.ID, mode.Value(x.ID), x.Findings)
	}
	return tw.Flush()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
