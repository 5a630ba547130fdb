// Command ingest is Vigie's door for detector events: POST /v1/events.
package main

import (
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/ingest/internal/app"
)

func main() { service.Main("ingest", app.DefaultConfig(), app.Build) }
