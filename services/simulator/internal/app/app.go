// Package app is the simulator's command line: `credentials` writes the sensors' tokens,
// `reference` writes a reference directory with a generated sensor set, `run` replays a
// simulated period (the planted scenarios on realistic background traffic) against the
// ingest API, compressing weeks into minutes, and `steady` sends at a fixed rate in real time
// for benchmarks.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/telemetry"
	refdata "github.com/vigie/vigie/schemas/reference"
)

// EnvPrefix prefixes the simulator's environment variables.
const EnvPrefix = "VIGIE_SIMULATOR"

const usage = `usage: simulator <command> [flags]

commands:
  credentials  write a token for every sensor: ingest's credentials file (hashes) and the
               simulator's tokens file
  reference    write a reference directory whose sensors.csv is generated (seed, sensors
               per facility), for the enricher and the simulator
  run          simulate a period (planted scenarios on background traffic) against ingest
  steady       send a steady rate of events in real time (benchmarks)

Run 'simulator <command> -h' for the command's flags.
`

// Run runs one command. stdout receives the command's result (the run summary); logs go to
// stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "-help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	switch args[0] {
	case "credentials":
		return runCredentials(args[1:])
	case "reference":
		return runReference(args[1:])
	case "run":
		return runSimulation(ctx, args[1:], stdout)
	case "steady":
		return runSteady(ctx, args[1:], stdout)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// loadReference loads a reference directory, or the embedded default when dir is empty.
func loadReference(dir string) (*reference.Snapshot, error) {
	if dir == "" {
		return reference.Load(refdata.FS)
	}
	return reference.LoadDir(dir)
}

func newLogger(c telemetry.LogConfig) (*zap.Logger, error) {
	return telemetry.NewLogger(c, "simulator")
}

// ---- credentials ----

// helpOK turns -h into a clean exit.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
