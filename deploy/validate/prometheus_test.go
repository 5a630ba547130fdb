package validate

import (
	"bytes"
	"os"
	"testing"

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

// TestPrometheusConfig: the compose stack's Prometheus scrapes every service and loads the
// rules (deploy/prometheus's own tests check and evaluate the rules).
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
