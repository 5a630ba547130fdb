package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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
	var events io.Reader = s.stdin
	if *eventsFile != "-" {
		f, err := os.Open(*eventsFile)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		defer f.Close()
		events = f
	}
	return ruletool.Test(ctx, files, events, s.stdout)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
