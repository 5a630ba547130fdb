// Package reference embeds Vigie's default reference data — facilities, sensors, phone
// models by TAC and operators by MCC/MNC — so that a service binary carries a copy it can
// start with when no reference directory is configured. The formats, sources and licences
// are in README.md beside this file; github.com/vigie/vigie/pkg/reference loads them.
package reference

import "embed"

// FS holds facilities.csv, sensors.csv, tac.csv and mcc_mnc.csv at its root.
//
//go:embed facilities.csv sensors.csv tac.csv mcc_mnc.csv
var FS embed.FS
