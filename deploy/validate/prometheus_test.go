package validate

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The subset of Prometheus's configuration the compose stack uses; unknown keys are errors.
type promConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName      string `yaml:"job_name"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// Prometheus's rule file format (rulefmt), strictly.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func decodeStrict(t *testing.T, data []byte, v any) error {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadPromConfig(t *testing.T) promConfig {
	data, err := os.ReadFile(path(t, "deploy", "prometheus", "prometheus.yml"))
	require.NoError(t, err)
	var c promConfig
	require.NoError(t, decodeStrict(t, data, &c))
	return c
}

// checkRules returns the problems of a rule file: structure, PromQL syntax, templates, and
// every vigie_* metric and label it reads being defined by the Go code.
func checkRules(t *testing.T, data []byte, defined map[string]codeMetric, jobs []string) []string {
	t.Helper()
	var rf ruleFile
	if err := decodeStrict(t, data, &rf); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, sprintf(format, args...)) }
	if len(rf.Groups) == 0 {
		bad("no rule group")
	}
	names := map[string]bool{}
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "query", "first", "value", "label", "printf", "title", "toUpper", "toLower", "reReplaceAll", "match", "args", "safeHtml", "externalURL", "pathPrefix", "stripPort", "graphLink", "tableLink"} {
		funcs[f] = func(...any) any { return nil }
	}
	for _, g := range rf.Groups {
		if g.Name == "" || names[g.Name] {
			bad("group name %q empty or repeated", g.Name)
		}
		names[g.Name] = true
		for _, r := range g.Rules {
			id := g.Name + "/" + r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") {
				bad("%s: a rule has exactly one of alert and record", id)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					bad("%s: for %q: %v", id, r.For, err)
				}
			}
			if r.Alert != "" && !slices.Contains([]string{"page", "ticket"}, r.Labels["severity"]) {
				bad("%s: severity label must be page or ticket", id)
			}
			if r.Alert != "" && (r.Annotations["summary"] == "" || r.Annotations["description"] == "") {
				bad("%s: summary and description annotations required", id)
			}
			for k, v := range r.Annotations {
				// Prometheus defines these variables before every annotation template.
				const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
				if _, err := template.New(k).Funcs(funcs).Parse(defs + v); err != nil {
					bad("%s: annotation %s: %v", id, k, err)
				}
			}
			expr, err := metricsql.Parse(r.Expr)
			if err != nil {
				bad("%s: expr: %v", id, err)
				continue
			}
			metricsql.VisitAll(expr, func(e metricsql.Expr) {
				switch e := e.(type) {
				case *metricsql.MetricExpr:
					for _, lfs := range e.LabelFilterss {
						var metric string
						for _, lf := range lfs {
							if lf.Label == "__name__" {
								metric = lf.Value
							}
						}
						m, ok := lookupMetric(defined, metric)
						switch {
						case metric == "up":
							m = codeMetric{Name: "up", Labels: map[string]bool{}}
						case recorded[metric]:
							m = codeMetric{Name: metric, Labels: map[string]bool{"group": true, "topic": true}}
						case strings.HasPrefix(metric, "vigie_") && !ok:
							bad("%s reads %s, which no Go code defines", id, metric)
							continue
						case !ok:
							bad("%s reads %s, which is neither Vigie's nor Prometheus's", id, metric)
							continue
						}
						for _, lf := range lfs {
							switch lf.Label {
							case "__name__", "job", "instance":
							default:
								if !m.Labels[lf.Label] {
									bad("%s filters %s on label %q, which it does not have (%s)", id, metric, lf.Label, m.Where)
								}
							}
							if lf.Label == "job" && !lf.IsRegexp && !slices.Contains(jobs, lf.Value) {
								bad("%s names job %q, which prometheus.yml does not scrape", id, lf.Value)
							}
						}
					}
				}
			})
		}
	}
	return problems
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(fmtSprintf(format, args...))
}

func TestPrometheusConfig(t *testing.T) {
	c := loadPromConfig(t)
	require.Equal(t, []string{"/etc/prometheus/rules/*.yml"}, c.RuleFiles)
	var jobs []string
	for _, s := range c.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	for _, svc := range []string{"ingest", "enricher", "writer", "correlator"} {
		require.Contains(t, jobs, "vigie-"+svc)
	}
}

func TestAlertingRules(t *testing.T) {
	defined := definedMetrics(t)
	c := loadPromConfig(t)
	var jobs []string
	for _, s := range c.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	data, err := os.ReadFile(path(t, "deploy", "prometheus", "rules", "vigie.yml"))
	require.NoError(t, err)
	require.Empty(t, checkRules(t, data, defined, jobs))

	// The rules read the lag, readiness (up), dead letters and the build info.
	for _, want := range []string{"vigie_kafka_consumer_lag_messages", "up{", "vigie_build_info", "vigie_writer_dlq_total", "vigie_ingest_events_rejected_total", "vigie_enricher_events_total"} {
		require.Contains(t, string(data), want)
	}

	// The checker sees a metric that does not exist, a label a metric does not have, and a
	// misspelt key.
	for name, mutate := range map[string]func(string) string{
		"unknown metric": func(s string) string {
			return strings.Replace(s, "vigie_writer_dlq_total", "vigie_writer_dead_letters_total", 1)
		},
		"unknown label": func(s string) string {
			return strings.Replace(s, `vigie_enricher_events_total{outcome!="enriched"}`, `vigie_enricher_events_total{result!="enriched"}`, 1)
		},
		"misspelt key": func(s string) string { return strings.Replace(s, "annotations:", "anotations:", 1) },
		"bad promql":   func(s string) string { return strings.Replace(s, "> 500000", "> > 500000", 1) },
		"bad template": func(s string) string { return strings.Replace(s, "{{ $labels.job }}", "{{ $labels.job }", 1) },
		"unknown job":  func(s string) string { return strings.Replace(s, `job="vigie-ingest"`, `job="vigie-ingester"`, 1) },
		"no severity":  func(s string) string { return strings.Replace(s, "severity: page", "severity: urgent", 1) },
	} {
		mutated := mutate(string(data))
		require.NotEqual(t, string(data), mutated, name)
		require.NotEmpty(t, checkRules(t, []byte(mutated), defined, jobs), "a rule file with %s passed", name)
	}
}
