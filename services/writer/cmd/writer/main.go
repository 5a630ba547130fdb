// Command writer consumes detections.enriched.v1 into ClickHouse's detections table, every
// event exactly once in effect (see services/writer/README.md).
package main

import (
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/writer/internal/app"
	"github.com/vigie/vigie/services/writer/internal/config"
)

func main() { service.Main(app.Name, config.Default(), app.Build) }
