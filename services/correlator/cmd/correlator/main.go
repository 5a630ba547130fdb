// Command correlator evaluates Vigie's correlation rules — streaming over
// detections.enriched.v1, scheduled over ClickHouse rollups — and writes alerts to alerts.v1
// and the ClickHouse alerts table. See services/correlator/README.md.
package main

import (
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/correlator/internal/app"
)

func main() { service.Main("correlator", app.DefaultConfig(), app.Build) }
