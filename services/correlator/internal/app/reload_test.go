package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	schemarules "github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// rulesDir copies the shipped rules into a directory of their own.
func rulesDir(t *testing.T) string {
	dir := t.TempDir()
	names, err := schemarules.FS.ReadDir(".")
	require.NoError(t, err)
	for _, n := range names {
		data, err := schemarules.FS.ReadFile(n.Name())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, n.Name()), data, 0o644))
	}
	return dir
}

// TestReloadRules: a rule set that does not load is refused with the file and line, the
// running rules stay; a good set replaces the scheduled rules, and the streaming rules when
// they changed.
func TestReloadRules(t *testing.T) {
	dir := rulesDir(t)
	rs, err := loadRules(dir)
	require.NoError(t, err)
	core, logs := observer.New(zap.InfoLevel)
	s := sched.New(sched.DefaultConfig(), nil, "vigie", rs, &alert.Memory{}, zap.NewNop(), prometheus.NewRegistry())
	consumer := &fakeConsumer{}
	r := &reloader{cfg: &Config{RulesDir: dir}, logger: zap.New(core), scheduler: s, streaming: consumer, streamingRules: streamingDigests(rs)}
	before := rules.Names(s.Rules())
	require.Contains(t, before, "SYNC_BURST")

	bad := filepath.Join(dir, "sync_burst.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("rule: SYNC_BURST\ntitle: broken\nseverity: high\ntype: baseline_threshold\nmode: scheduled\ngroup_by: [facility_id]\nwindow: 10 minutes\n"), 0o644))
	err = r.rules(context.Background())
	require.ErrorContains(t, err, "sync_burst.yaml:7:9: window:")
	require.Equal(t, before, rules.Names(s.Rules()), "the running rules stay")

	require.NoError(t, os.Remove(bad))
	require.NoError(t, r.rules(context.Background()))
	require.NotContains(t, rules.Names(s.Rules()), "SYNC_BURST")
	require.Len(t, s.Rules(), len(before)-1)
	require.Zero(t, consumer.sets, "the streaming rules did not change")

	path := filepath.Join(dir, "device_multi_site.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(data, []byte("max_evidence: 5\n")...), 0o644))
	require.NoError(t, r.rules(context.Background()))
	require.Equal(t, 1, consumer.sets)
	require.Equal(t, 1, logs.FilterMessageSnippet("streaming rules changed").Len())
	require.NoError(t, r.rules(context.Background()))
	require.Equal(t, 1, consumer.sets, "the same again changes nothing")
}

type fakeConsumer struct{ sets int }

func (f *fakeConsumer) SetRules([]*rules.Rule) { f.sets++ }
