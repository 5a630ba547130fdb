package prometheus

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/pkg/testenv/codemetrics"
)

const rulesFile = "rules/vigie.yml"

// external are the metrics the rules read that no Vigie code defines, with their labels and
// where they come from.
var external = map[string]codemetrics.Metric{
	"up": {Name: "up", Labels: map[string]bool{}, Where: "Prometheus, per scrape target"},
	"kafka_topic_partition_under_replicated_partition": {
		Name: "kafka_topic_partition_under_replicated_partition", Labels: map[string]bool{"topic": true, "partition": true},
		Where: "Strimzi's Kafka Exporter (spec.kafkaExporter, deploy/k8s/base/kafka.yaml)",
	},
}

// Labels every series has that no code declares: the target's.
var targetLabels = map[string]bool{"job": true, "instance": true}

var promParser = parser.NewParser(parser.Options{})

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	return root
}

// scrapedJobs are the job names of prometheus.yml.
func scrapedJobs(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("prometheus.yml")
	require.NoError(t, err)
	var c struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(data, &c))
	var jobs []string
	for _, s := range c.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	return jobs
}

// runbookSections are the "## Name" headings of docs/runbook.md, by GitHub anchor, with the
// sub-headings ("### …") each has.
func runbookSections(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "docs", "runbook.md"))
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			cur = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "## ")))
			out[cur] = []string{}
		case strings.HasPrefix(line, "### ") && cur != "":
			out[cur] = append(out[cur], strings.TrimSpace(strings.TrimPrefix(line, "### ")))
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// checkRules returns the problems of a rule file: what Prometheus's parser refuses
// (structure, unknown keys, PromQL, templates), severities and annotations, every metric and
// label read being defined by the Go code (or external), jobs being scraped, and each alert's
// runbook_url being a section of the runbook with its three parts.
func checkRules(t *testing.T, data []byte, defined map[string]codemetrics.Metric, jobs []string, runbook map[string][]string) []string {
	t.Helper()
	rgs, errs := rulefmt.Parse(data, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	var problems []string
	for _, err := range errs {
		problems = append(problems, err.Error())
	}
	if rgs == nil || len(errs) > 0 {
		return problems
	}
	bad := func(format string, args ...any) { problems = append(problems, sprintf(format, args...)) }
	recorded := map[string]codemetrics.Metric{}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				// Every recording rule here sums by (group, topic).
				recorded[r.Record] = codemetrics.Metric{Name: r.Record, Labels: map[string]bool{"group": true, "topic": true}, Where: "recording rule"}
			}
		}
	}
	metric := func(name string) (codemetrics.Metric, bool) {
		if m, ok := recorded[name]; ok {
			return m, true
		}
		if m, ok := external[name]; ok {
			return m, true
		}
		return codemetrics.Lookup(defined, name)
	}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			id := g.Name + "/" + r.Alert + r.Record
			if r.Alert != "" {
				if !slices.Contains([]string{"page", "ticket"}, r.Labels["severity"]) {
					bad("%s: severity label must be page or ticket", id)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if r.Annotations[a] == "" {
						bad("%s: annotation %s required", id, a)
					}
				}
				anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], "docs/runbook.md#")
				switch {
				case !ok || anchor != strings.ToLower(r.Alert):
					bad("%s: runbook_url must be docs/runbook.md#%s", id, strings.ToLower(r.Alert))
				case runbook[anchor] == nil:
					bad("%s: docs/runbook.md has no section ## %s", id, r.Alert)
				default:
					for _, part := range []string{"What it means", "How to confirm", "What to do"} {
						if !slices.Contains(runbook[anchor], part) {
							bad("%s: its runbook section has no ### %s", id, part)
						}
					}
				}
			}
			expr, err := promParser.ParseExpr(r.Expr)
			if err != nil {
				continue // rulefmt reported it
			}
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				switch n := n.(type) {
				case *parser.VectorSelector:
					m, ok := metric(n.Name)
					if !ok {
						bad("%s reads %s, which no Go code defines", id, n.Name)
						return nil
					}
					for _, lm := range n.LabelMatchers {
						switch {
						case lm.Name == model.MetricNameLabel:
						case lm.Name == "job":
							if lm.Type == 0 && !slices.Contains(jobs, lm.Value) { // labels.MatchEqual
								bad("%s names job %q, which prometheus.yml does not scrape", id, lm.Value)
							}
						case !m.Labels[lm.Name] && !targetLabels[lm.Name]:
							bad("%s filters %s on label %q, which it does not have (%s)", id, n.Name, lm.Name, m.Where)
						}
					}
				case *parser.AggregateExpr:
					if n.Without {
						return nil
					}
					parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
						vs, ok := inner.(*parser.VectorSelector)
						if !ok {
							return nil
						}
						m, ok := metric(vs.Name)
						if !ok {
							return nil
						}
						for _, l := range n.Grouping {
							if !m.Labels[l] && !targetLabels[l] {
								bad("%s groups %s by %q, which it does not have (%s)", id, vs.Name, l, m.Where)
							}
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	return problems
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " "))
}

func TestRulesAgainstTheCode(t *testing.T) {
	root := repoRoot(t)
	defined, err := codemetrics.Defined(root)
	require.NoError(t, err)
	data, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	jobs := scrapedJobs(t)
	runbook := runbookSections(t)
	require.Empty(t, checkRules(t, data, defined, jobs, runbook))

	// The alerts that issue 16 asks for exist.
	for _, want := range []string{"VigieConsumerLagHigh", "VigieIngestRejectingEvents", "VigieWriterDeadLetters",
		"VigieNotReady", "VigieEventClockStalled", "VigieWriterInsertsFailing", "VigieCorrelatorDedupOverflow",
		"VigieCorrelatorStateOverflow", "VigieKafkaUnderReplicated"} {
		require.Contains(t, string(data), "- alert: "+want+"\n")
	}
	// Every runbook section is an alert's.
	for anchor := range runbook {
		require.Contains(t, strings.ToLower(string(data)), "- alert: "+anchor+"\n", "docs/runbook.md section %q is no alert's", anchor)
	}

	// The checker sees each kind of mistake.
	for name, mutate := range map[string]func(string) string{
		"unknown metric": func(s string) string {
			return strings.Replace(s, "vigie_writer_dlq_total", "vigie_writer_dead_letters_total", 1)
		},
		"unknown label": func(s string) string {
			return strings.Replace(s, `vigie_enricher_events_total{outcome!="enriched"}`, `vigie_enricher_events_total{result!="enriched"}`, 1)
		},
		"unknown by label": func(s string) string {
			return strings.Replace(s, "sum by (job, reason) (rate(vigie_writer_dlq_total", "sum by (job, cause) (rate(vigie_writer_dlq_total", 1)
		},
		"misspelt key": func(s string) string { return strings.Replace(s, "annotations:", "anotations:", 1) },
		"bad promql":   func(s string) string { return strings.Replace(s, "> 500000", "> > 500000", 1) },
		"bad template": func(s string) string { return strings.Replace(s, "{{ $labels.job }}", "{{ $labels.job }", 1) },
		"bad duration": func(s string) string { return strings.Replace(s, "for: 5m", "for: 5 minutes", 1) },
		"unknown job":  func(s string) string { return strings.Replace(s, `job="vigie-ingest"`, `job="vigie-ingester"`, 1) },
		"no severity":  func(s string) string { return strings.Replace(s, "severity: page", "severity: urgent", 1) },
		"no runbook": func(s string) string {
			return strings.Replace(s, `runbook_url: "docs/runbook.md#vigienotready"`, "", 1)
		},
		"runbook mismatch": func(s string) string { return strings.Replace(s, "#vigienotready", "#vigieservicedown", 1) },
		"external label": func(s string) string {
			return strings.Replace(s, "sum by (topic) (kafka_topic_partition_under_replicated_partition)", "sum by (broker) (kafka_topic_partition_under_replicated_partition)", 1)
		},
	} {
		mutated := mutate(string(data))
		require.NotEqual(t, string(data), mutated, name)
		require.NotEmpty(t, checkRules(t, []byte(mutated), defined, jobs, runbook), "a rule file with %s passed", name)
	}
	delete(runbook, "vigieeventclockstalled")
	require.NotEmpty(t, checkRules(t, data, defined, jobs, runbook), "an alert without its runbook section passed")
}

func readRules() (string, error) {
	data, err := os.ReadFile(rulesFile)
	return string(data), err
}
