package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/services/vigiectl/internal/rekey"
)

// runKeysRotate adds a new pseudonym key version to ingest's key file and makes it active
// (pkg/pseudonym Rotate): the key holder runs it where the key file lives.
func runKeysRotate(_ context.Context, s streams, args []string) error {
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	keyFile := fs.String("key_file", "", "ingest's pseudonym key file (YAML, mode 0600): rewritten in place, atomically")
	version := fs.String("version", "", "the new version's name (default: the last version's trailing number plus one, k1 → k2)")
	rest, err := parse(s, "keys rotate", fs, nil, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("keys rotate takes no arguments, got %q", rest)
	}
	if *keyFile == "" {
		return usagef("keys rotate: -key_file is required")
	}
	added, err := pseudonym.Rotate(*keyFile, *version)
	if err != nil {
		return err
	}
	k, err := pseudonym.LoadFile(*keyFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "%s: version %s added and active; chain %v\n", *keyFile, added, k.Versions())
	fmt.Fprintln(s.stdout, "next: restart ingest; once the writer has written what ingest accepted before, stop the writer and the correlator, run keys forward, start them again")
	return nil
}

// runKeysForward maps the pseudonyms stored in ClickHouse under older key versions onto the
// active one (package rekey), after `keys rotate` and with the writer and correlator stopped.
func runKeysForward(ctx context.Context, s streams, args []string) error {
	cfg := &RulesTestConfig{Log: defaultLog(), ClickHouse: clickhouse.DefaultConfig()} // log and clickhouse blocks, as rules test
	fs := flag.NewFlagSet("keys forward", flag.ContinueOnError)
	keyFile := fs.String("key_file", "", "ingest's pseudonym key file, after keys rotate: every version it lists is used")
	if _, err := parse(s, "keys forward", fs, cfg, args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usagef("keys forward: -key_file is required")
	}
	keys, err := pseudonym.LoadFile(*keyFile)
	if err != nil {
		return err
	}
	conn, _, done, err := cfg.open(ctx)
	if err != nil {
		return err
	}
	defer done()
	rep, err := rekey.Forward(ctx, conn, cfg.ClickHouse.Database, keys, func(format string, a ...any) {
		fmt.Fprintf(s.stdout, format+"\n", a...)
	})
	if err != nil {
		return err
	}
	if rep.Left > 0 {
		return fmt.Errorf("keys forward: %d rows are still under %v (written during the run): stop the writer and run again", rep.Left, rep.From)
	}
	return nil
}
