package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// countingIngest checks tokens against a credentials file like ingest and counts events;
// events with an out-of-range RSSI are rejected.
type countingIngest struct {
	mu       sync.Mutex
	byHash   map[string]string
	accepted int
	rejected int
	imeis    map[string]bool
}

func (c *countingIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	sensor, ok := c.byHash[sensorauth.HashToken(tok)]
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var a struct{ Accepted, Rejected int }
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		var e event.Detector
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.SensorID != sensor {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if e.RSSIdBm != nil && *e.RSSIdBm < -200 {
			a.Rejected++
			continue
		}
		a.Accepted++
		c.mu.Lock()
		if e.IMEI != "" {
			c.imeis[e.IMEI] = true
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.accepted += a.Accepted
	c.rejected += a.Rejected
	c.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]int{"accepted": a.Accepted, "rejected": a.Rejected})
}

func TestCommandsEndToEndAgainstAFakeIngest(t *testing.T) {
	dir := t.TempDir()
	refDir, credPath, tokPath := filepath.Join(dir, "ref"), filepath.Join(dir, "credentials.yaml"), filepath.Join(dir, "tokens.yaml")
	ctx := context.Background()
	var out bytes.Buffer
	require.NoError(t, Run(ctx, []string{"reference", "-out_dir", refDir, "-per_facility", "12"}, &out, &out))
	ref, err := reference.LoadDir(refDir)
	require.NoError(t, err)
	require.Equal(t, 12*ref.Stats().Facilities, ref.Stats().Sensors)

	require.NoError(t, Run(ctx, []string{"credentials", "-reference_dir", refDir, "-credentials_file", credPath, "-tokens_file", tokPath}, &out, &out))
	hashes, err := sensorauth.Load(credPath)
	require.NoError(t, err)
	fake := &countingIngest{byHash: map[string]string{}, imeis: map[string]bool{}}
	for _, e := range hashes.Credentials {
		fake.byHash[e.TokenSHA256] = e.SensorID
	}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	out.Reset()
	summaryPath := filepath.Join(dir, "summary.json")
	require.NoError(t, Run(ctx, []string{"run", "-reference_dir", refDir, "-tokens_file", tokPath, "-ingest.url", srv.URL,
		"-days", "10", "-scale", "0.02", "-supplier_phones", "300", "-invalid_ratio", "0.01", "-end", "2026-11-01",
		"-summary_file", summaryPath, "-log.level", "warn"}, &out, &out))
	var sum Summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &sum))
	require.Equal(t, int64(fake.accepted), sum.Stats.Accepted)
	require.Equal(t, int64(fake.rejected), sum.Stats.Rejected)
	require.Equal(t, sum.Stats.Sent, sum.Stats.Accepted+sum.Stats.Rejected)
	require.Equal(t, int64(sum.InvalidPlanted), sum.Stats.Rejected)
	require.Positive(t, sum.Stats.Rejected)
	for _, sc := range traffic.Scenarios {
		require.True(t, slices.ContainsFunc(sum.Findings, func(f FindingInfo) bool { return f.Scenario == sc }), "no finding of %s", sc)
	}
	require.NotEmpty(t, sum.Decoys)
	require.Equal(t, time.Date(2026, 10, 22, 0, 0, 0, 0, time.UTC), sum.Start)

	// Neither the summary nor the file holds a clear identifier the fake received.
	file, err := os.ReadFile(summaryPath)
	require.NoError(t, err)
	require.NotEmpty(t, fake.imeis)
	for imei := range fake.imeis {
		require.NotContains(t, out.String(), imei)
		require.NotContains(t, string(file), imei)
		require.NotContains(t, string(file), imei[:14])
	}

	// Asked for, the planted identifiers go to stdout.
	out.Reset()
	require.NoError(t, Run(ctx, []string{"run", "-reference_dir", refDir, "-tokens_file", tokPath, "-ingest.url", srv.URL,
		"-days", "10", "-scale", "0", "-supplier_phones", "60", "-scenarios", "cloned-imei", "-print_planted", "-log.level", "warn"}, &out, &out))
	require.Contains(t, out.String(), "IMPOSSIBLE_TRAVEL")
}

func TestSteadyCommand(t *testing.T) {
	dir := t.TempDir()
	credPath, tokPath := filepath.Join(dir, "credentials.yaml"), filepath.Join(dir, "tokens.yaml")
	var out bytes.Buffer
	ctx := context.Background()
	require.NoError(t, Run(ctx, []string{"credentials", "-credentials_file", credPath, "-tokens_file", tokPath}, &out, &out))
	hashes, err := sensorauth.Load(credPath)
	require.NoError(t, err)
	fake := &countingIngest{byHash: map[string]string{}, imeis: map[string]bool{}}
	for _, e := range hashes.Credentials {
		fake.byHash[e.TokenSHA256] = e.SensorID
	}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	out.Reset()
	require.NoError(t, Run(ctx, []string{"steady", "-tokens_file", tokPath, "-ingest.url", srv.URL, "-rate", "2000", "-duration", "1s", "-phones", "500", "-log.level", "warn"}, &out, &out))
	var res SteadyResult
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	// Under -race the machine may not keep the rate: what was sent must be accepted.
	require.Greater(t, res.Stats.Accepted, int64(500))
	require.Equal(t, res.Stats.Sent, res.Stats.Accepted)
	require.Equal(t, int64(fake.accepted), res.Stats.Accepted)
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	require.ErrorContains(t, Run(context.Background(), []string{"fly"}, &out, &out), "unknown command")
	require.Error(t, Run(context.Background(), nil, &out, &out))
	require.NoError(t, Run(context.Background(), []string{"run", "-h"}, &out, &out))
}

func TestRunConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*RunConfig)
		want   string
	}{
		{"ok", func(*RunConfig) {}, ""},
		{"no tokens", func(c *RunConfig) { c.TokensFile = "" }, "tokens_file"},
		{"bad end", func(c *RunConfig) { c.End = "yesterday" }, "end"},
		{"bad url", func(c *RunConfig) { c.Ingest.URL = "127.0.0.1:19080" }, "ingest.url"},
		{"bad scenario", func(c *RunConfig) { c.Scenarios = []string{"heist"} }, "scenarios"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultRunConfig()
			c.TokensFile = "tokens.yaml"
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}
