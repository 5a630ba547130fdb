// Package cli is vigiectl: a small dispatcher of subcommands, each with its own flags, the
// configuration-shaped ones (-kafka.brokers, -clickhouse.addrs, …) loaded by pkg/config from
// the same keys as the services' (env VIGIE_CTL_*, YAML file -config or VIGIE_CTL_CONFIG).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/vigie/vigie/pkg/service"
)

// Name is the command's name, in messages and the version line.
const Name = "vigiectl"

// EnvPrefix prefixes the environment variables of every subcommand's configuration.
const EnvPrefix = "VIGIE_CTL"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError is a command line that cannot be run as written: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// io is what a command reads and writes.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// command is one subcommand: its words ("topics apply"), a synopsis and a summary for the
// help, and what it runs with the arguments after its words.
type command struct {
	name     string
	synopsis string
	summary  string
	run      func(ctx context.Context, s streams, args []string) error
}

func commands() []command {
	return []command{
		{"migrate", "migrate [-analyst_role] [-clickhouse.addrs …] [-clickhouse.database …] [-clickhouse.cluster NAME]",
			"apply the ClickHouse migrations of schemas/clickhouse (idempotent)", runMigrate},
		{"topics apply", "topics apply [-dry-run] [-strict] [-spec FILE] [-topics.suffix S] [-kafka.brokers …]",
			"create and align the Kafka topics of schemas/kafka/topics.yaml; report drift", runTopicsApply},
		{"rules check", "rules check FILE…",
			"validate correlation rule files (unknown keys, bad windows, unknown fields)", runRulesCheck},
		{"rules test", "rules test FILE… [-truth SUMMARY] [-from T] [-to T] [-clickhouse.* …] | FILE… -events NDJSON [-truth SUMMARY]",
			"run rule files on a database (read only) or over sample events: what they would raise, the history they need, and against a planted summary what they found", runRulesTest},
		{"keys rotate", "keys rotate -key_file FILE [-version V]",
			"add a new pseudonym key version to ingest's key file and make it active (the chain keeps each device one device)", runKeysRotate},
		{"keys forward", "keys forward -key_file FILE [-clickhouse.addrs …] [-clickhouse.database …]",
			"map the pseudonyms stored under older key versions onto the active one: detections, device rollups, alerts", runKeysForward},
		{"version", "version", "print the version (also -version)", runVersion},
	}
}

// Run runs the command line args (without the program name) and returns the exit code:
// 0 ok, 1 the command failed, 2 the command line is wrong.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := streams{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	case "-version", "--version":
		args = []string{"version"}
	}
	cmd, rest, ok := find(args)
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", Name, strings.Join(args[:min(2, len(args))], " "))
		usage(stderr)
		return ExitUsage
	}
	err := cmd.run(ctx, s, rest)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "%s %s: %v\nusage: %s %s\n", Name, cmd.name, err, Name, cmd.synopsis)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", Name, cmd.name, err)
		return ExitError
	}
}

// find matches the longest command whose words start args.
func find(args []string) (command, []string, bool) {
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "%s is Vigie's admin command.\n\nUsage:\n", Name)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s %s\n        %s\n", Name, c.synopsis, c.summary)
	}
	fmt.Fprintf(w, "\n`%s COMMAND -h` lists a command's flags. Configuration flags follow the services' keys\n"+
		"(-kafka.brokers, -kafka.tls.enabled, -clickhouse.addrs, -clickhouse.password_file, …); each has an\n"+
		"environment variable %s_<KEY> (dots as underscores) and may come from a YAML file (-config or %s_CONFIG).\n"+
		"Exit codes: 0 ok, 1 failed, 2 usage.\n", Name, EnvPrefix, EnvPrefix)
}

func runVersion(_ context.Context, s streams, args []string) error {
	if len(args) > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintln(s.stdout, versionLine())
	return nil
}

func versionLine() string {
	v, r := service.Version()
	return fmt.Sprintf("%s %s (revision %s, %s)", Name, v, r, runtime.Version())
}
