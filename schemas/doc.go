// Package schemas holds Vigie's contracts as data: the detector event JSON Schema
// (schemas/events), the ClickHouse migrations (schemas/clickhouse), the reference data
// (schemas/reference), the correlation rules (schemas/rules) and the Kafka topic spec
// (schemas/kafka). Sub-packages embed them so that each service binary carries the exact
// contract it was built against.
package schemas
