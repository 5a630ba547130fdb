// Command correlator evaluates Vigie's correlation rules — streaming over
// detections.enriched.v1, scheduled over ClickHouse rollups — and writes alerts to alerts.v1
// and the ClickHouse alerts table. See services/correlator/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/telemetry"
	"github.com/vigie/vigie/services/correlator/internal/app"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "correlator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg := app.DefaultConfig()
	if err := config.Load(&cfg, app.EnvPrefix, args); err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(cfg.Log, "correlator")
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	a, err := app.New(ctx, cfg, logger, telemetry.NewRegistry())
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
