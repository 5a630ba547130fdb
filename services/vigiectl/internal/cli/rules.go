package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

func runRulesCheck(ctx context.Context, s streams, args []string) error {
	files, err := parse(s, "rules check", flag.NewFlagSet("rules check", flag.ContinueOnError), nil, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file")
	}
	return fmt.Errorf("not wired yet")
}

func runRulesTest(ctx context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	eventsFile := fs.String("events", "", "NDJSON file of enriched events, one per line (- for stdin)")
	files, err := parse(s, "rules test", fs, nil, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("name at least one rule file")
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
	_ = events
	return fmt.Errorf("not wired yet")
}
