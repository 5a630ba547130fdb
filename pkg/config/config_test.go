package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/config"
)

type kafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
}

type testConfig struct {
	Kafka        kafkaConfig     `yaml:"kafka"`
	BatchRows    int             `yaml:"batch_rows"`
	FlushEvery   time.Duration   `yaml:"flush_every"`
	Verbose      bool            `yaml:"verbose"`
	SampleFactor float64         `yaml:"sample_factor"`
	Rates        []int           `yaml:"rates"`
	Backoffs     []time.Duration `yaml:"backoffs"`
}

func (c *testConfig) Validate() error {
	if len(c.Kafka.Brokers) == 0 {
		return errors.New("kafka.brokers: must not be empty")
	}
	if c.BatchRows <= 0 {
		return errors.New("batch_rows: must be positive")
	}
	return nil
}

func defaults() *testConfig {
	return &testConfig{Kafka: kafkaConfig{Brokers: []string{"default:9092"}, Topic: "t"}, BatchRows: 100, FlushEvery: time.Second}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestLoadLayers(t *testing.T) {
	path := writeFile(t, "kafka:\n  brokers: [yaml:1, yaml:2]\n  topic: from-yaml\nbatch_rows: 500\nflush_every: 2s\n")

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want testConfig
	}{
		{
			name: "defaults only",
			want: *defaults(),
		},
		{
			name: "yaml overrides defaults",
			args: []string{"-config", path},
			want: testConfig{Kafka: kafkaConfig{Brokers: []string{"yaml:1", "yaml:2"}, Topic: "from-yaml"}, BatchRows: 500, FlushEvery: 2 * time.Second},
		},
		{
			name: "env overrides yaml, flags override env",
			env:  map[string]string{"VIGIE_TEST_KAFKA_TOPIC": "from-env", "VIGIE_TEST_BATCH_ROWS": "700", "VIGIE_TEST_KAFKA_BROKERS": "env:1, env:2"},
			args: []string{"-config", path, "-batch_rows=900", "-verbose", "-flush_every", "250ms", "-sample_factor", "0.5", "-rates=1000,5000", "-backoffs=1s,2m"},
			want: testConfig{Kafka: kafkaConfig{Brokers: []string{"env:1", "env:2"}, Topic: "from-env"}, BatchRows: 900, FlushEvery: 250 * time.Millisecond, Verbose: true, SampleFactor: 0.5, Rates: []int{1000, 5000}, Backoffs: []time.Duration{time.Second, 2 * time.Minute}},
		},
		{
			name: "config path from the environment",
			env:  map[string]string{"VIGIE_TEST_CONFIG": path},
			want: testConfig{Kafka: kafkaConfig{Brokers: []string{"yaml:1", "yaml:2"}, Topic: "from-yaml"}, BatchRows: 500, FlushEvery: 2 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := defaults()
			require.NoError(t, config.Load(cfg, "VIGIE_TEST", tt.args))
			require.Equal(t, tt.want, *cfg)
		})
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{name: "unknown yaml key", yaml: "batch_row: 5\n", wantErr: "field batch_row not found"},
		{name: "bad yaml type", yaml: "batch_rows: many\n", wantErr: "cannot unmarshal"},
		{name: "bad env value", env: map[string]string{"VIGIE_TEST_FLUSH_EVERY": "soon"}, wantErr: "VIGIE_TEST_FLUSH_EVERY"},
		{name: "unknown env key", env: map[string]string{"VIGIE_TEST_ADMIN_ADDR": "x", "VIGIE_TEST_BATCHROWS": "1"}, wantErr: "environment VIGIE_TEST_ADMIN_ADDR, VIGIE_TEST_BATCHROWS: no such setting"},
		{name: "bad flag value", args: []string{"-batch_rows=x"}, wantErr: "-batch_rows"},
		{name: "bad list item", args: []string{"-rates=10,ten"}, wantErr: `-rates="10,ten": item "ten"`},
		{name: "validation", args: []string{"-batch_rows=0"}, wantErr: "batch_rows: must be positive"},
		{name: "unknown flag", args: []string{"-nope=1"}, wantErr: "flag provided but not defined: -nope"},
		{name: "missing file", args: []string{"-config", "/nonexistent/vigie.yaml"}, wantErr: "/nonexistent/vigie.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.yaml != "" {
				args = append([]string{"-config", writeFile(t, tt.yaml)}, args...)
			}
			err := config.Load(defaults(), "VIGIE_TEST", args)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
