// Package prometheus holds the tests of Vigie's Prometheus configuration and alerting rules
// (rules/vigie.yml): the rule files loaded by Prometheus's own parser and rules manager, every
// metric and label they read checked against what the Go code registers
// (pkg/testenv/codemetrics), every alert evaluated on synthetic series (firing when it should,
// silent when it should not), and every alert's runbook_url a section of docs/runbook.md.
package prometheus
