package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigie/vigie/pkg/config"
)

// parse splits args between the command's own flags (own: -dry-run, -events, …) and the
// rest. With a configuration (cfg not nil), pkg/config loads the rest into cfg: defaults,
// then the VIGIE_CTL_* environment, the -config YAML file, then the flags
// (-kafka.brokers, …); such a command takes no positional argument. Without one, the rest
// are the positional arguments parse returns. Own flags may come anywhere. With -h it prints
// the command's help and returns flag.ErrHelp. Its errors are usage errors (exit code 2).
func parse(s streams, cmd string, own *flag.FlagSet, cfg config.Validator, args []string) ([]string, error) {
	return parseArgs(s, cmd, own, cfg, args, false)
}

// parseWithFiles is parse for a command that takes both a configuration and positional
// arguments (files): an argument that does not start with "-" is positional, unless it
// follows a configuration flag written without "=" and names no existing file or directory
// (then it is that flag's value: -clickhouse.database vigie). Write -key=value to be sure.
func parseWithFiles(s streams, cmd string, own *flag.FlagSet, cfg config.Validator, args []string) ([]string, error) {
	return parseArgs(s, cmd, own, cfg, args, true)
}

func parseArgs(s streams, cmd string, own *flag.FlagSet, cfg config.Validator, args []string, files bool) ([]string, error) {
	own.SetOutput(io.Discard)
	var ownArgs, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch f := own.Lookup(name); {
		case name == "h" || name == "help":
			printHelp(s, cmd, own, cfg)
			return nil, flag.ErrHelp
		case f != nil:
			ownArgs = append(ownArgs, a)
			if !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				ownArgs = append(ownArgs, args[i])
			}
		case cfg == nil:
			return nil, usagef("unknown flag %s", a)
		default:
			rest = append(rest, a)
		}
	}
	if err := own.Parse(ownArgs); err != nil {
		return nil, usageError{err}
	}
	if cfg == nil {
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		return rest, nil
	}
	var positional []string
	if files {
		rest, positional = splitPositional(rest)
	}
	if err := config.Load(cfg, EnvPrefix, rest); err != nil {
		return nil, usageError{err}
	}
	return positional, nil
}

// splitPositional separates the positional arguments from the configuration flags and
// their values (see parseWithFiles).
func splitPositional(args []string) (flags, positional []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return flags, append(positional, args[i+1:]...)
		case !strings.HasPrefix(a, "-"):
			positional = append(positional, a)
		default:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !exists(args[i+1]) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	return flags, positional
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// printHelp prints the command's synopsis and own flags on stdout; pkg/config prints the
// configuration flags (with their environment variables) on stderr.
func printHelp(s streams, cmd string, own *flag.FlagSet, cfg config.Validator) {
	for _, c := range commands() {
		if c.name == cmd {
			fmt.Fprintf(s.stdout, "usage: %s %s\n\n%s.\n", Name, c.synopsis, c.summary)
		}
	}
	hasOwn := false
	own.VisitAll(func(*flag.Flag) { hasOwn = true })
	if hasOwn {
		fmt.Fprintln(s.stdout, "\nFlags:")
		own.SetOutput(s.stdout)
		own.PrintDefaults()
		own.SetOutput(io.Discard)
	}
	if cfg != nil {
		fmt.Fprintf(s.stdout, "\nConfiguration flags (each also %s_<KEY> in the environment, or a key of the -config YAML file):\n", EnvPrefix)
		if err := config.Load(cfg, EnvPrefix, []string{"-h"}); err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(s.stderr, err)
		}
	}
}
