package grafana

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/pkg/testenv/codemetrics"
)

// Labels every series carries that no code declares: Prometheus's target labels, and a
// histogram's bucket bound.
var implicitLabels = map[string]bool{"job": true, "instance": true, "le": true}

var (
	vigieMetric = regexp.MustCompile(`\bvigie_[a-z0-9_]+\b`)
	// A selector right after a metric name: vigie_x{a="b", c!~"d"}.
	metricSelector = regexp.MustCompile(`\b(vigie_[a-z0-9_]+)\{([^}]*)\}`)
	selectorLabel  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byClause       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// TestPrometheusMetricsExist checks that every vigie_* metric a Prometheus panel reads is
// defined in the Go code of the services, with the labels the panel groups or filters by, so
// that the dashboards do not drift from the code (what counts as defined: package
// pkg/testenv/codemetrics, which the alerting rules' tests use too).
func TestPrometheusMetricsExist(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	defined, err := codemetrics.Defined(root)
	require.NoError(t, err)
	require.NotEmpty(t, defined)
	checked := 0
	for _, d := range loadDashboards(t) {
		for _, tg := range targets(d) {
			if tg.DSType != prometheusType {
				continue
			}
			where := d.UID + " panel " + strconv.Quote(tg.Panel) + " query " + tg.RefID
			var used []codemetrics.Metric
			for _, name := range vigieMetric.FindAllString(tg.Expr, -1) {
				m, ok := codemetrics.Lookup(defined, name)
				require.True(t, ok, "%s reads %s, which no Go code defines; defined: %s",
					where, name, strings.Join(codemetrics.Names(defined), ", "))
				used = append(used, m)
				checked++
			}
			for _, sel := range metricSelector.FindAllStringSubmatch(tg.Expr, -1) {
				m, _ := codemetrics.Lookup(defined, sel[1])
				for _, l := range selectorLabel.FindAllStringSubmatch(sel[2], -1) {
					require.True(t, m.Labels[l[1]] || implicitLabels[l[1]],
						"%s filters %s on label %q, which %s does not have (%s)", where, sel[1], l[1], m.Name, m.Where)
				}
			}
			for _, by := range byClause.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" || implicitLabels[l] {
						continue
					}
					for _, m := range used {
						require.True(t, m.Labels[l], "%s groups by label %q, which %s does not have (%s)", where, l, m.Name, m.Where)
					}
				}
			}
		}
	}
	require.NotZero(t, checked, "no Prometheus metric found in the dashboards")
}
