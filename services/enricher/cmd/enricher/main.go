// Command enricher joins raw detections with reference data (facility, zone, region, phone
// model, operator) and re-keys them by device: detections.raw.v1 → detections.enriched.v1.
// See services/enricher/README.md.
package main

import (
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/enricher/internal/app"
)

func main() { service.Main(app.Name, app.DefaultConfig(), app.Build) }
