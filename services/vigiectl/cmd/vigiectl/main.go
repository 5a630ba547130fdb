// Command vigiectl is Vigie's admin command: ClickHouse migrations, Kafka topics, rule
// checks. `vigiectl help` lists the commands; services/vigiectl/README.md describes them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigie/vigie/services/vigiectl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
