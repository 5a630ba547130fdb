// Package alert is the correlator's output: one finding of a rule, with its evidence, as
// written to the alerts.v1 topic and the ClickHouse alerts table (schemas/clickhouse
// 0003_alerts.sql), and the sinks that write it. The alert record itself, its JSON codec
// and its schema belong to the event contract (pkg/event, schemas/events/alert.v1.schema.json).
package alert

import (
	"github.com/vigie/vigie/pkg/event"
)

// Topic is the Kafka topic of alerts, keyed by alert id so that the versions of one finding
// stay in order on one partition.
const Topic = event.TopicAlerts

// Alert is one version of a finding: event.Alert, the record of alerts.v1.
type Alert = event.Alert
