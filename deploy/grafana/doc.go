// Package grafana holds Vigie's Grafana provisioning (data sources, dashboard provider) and
// dashboards as files, and the tests that keep them working: every ClickHouse query is
// expanded the way the grafana-clickhouse-datasource plugin (v4) expands it and run against
// demo data on the local ClickHouse server, and every Prometheus metric a panel reads must
// be defined in the services' code. See README.md.
package grafana
