package app_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	schemarules "github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
)

// twice delivers every event of es twice, as the enriched topic does after producer
// retries or an enricher re-processing its last batch: each batch of 200 is followed by
// the copy of the previous one. It returns the messages and, for each, whether it is the
// first copy of its identity.
func twice(es []event.Enriched) ([]event.Enriched, []bool) {
	const batch = 200
	var out []event.Enriched
	var first []bool
	for start := 0; start < len(es); start += batch {
		end := min(start+batch, len(es))
		out = append(out, es[start:end]...)
		first = append(first, make([]bool, end-start)...)
		for i := start; i < end; i++ {
			first[len(first)-(end-i)] = true
		}
		if start > 0 {
			out = append(out, es[start-batch:start]...)
			first = append(first, make([]bool, batch)...)
		}
	}
	last := (len(es) - 1) / batch * batch
	out = append(out, es[last:]...)
	first = append(first, make([]bool, len(es)-last)...)
	return out, first
}

// firstCopies keeps what the writer stores: each identity once, at its first position.
func firstCopies(es []event.Enriched, pos []scenario.Position, first []bool) ([]event.Enriched, []scenario.Position) {
	var kept []event.Enriched
	var at []scenario.Position
	for i := range es {
		if first[i] {
			kept, at = append(kept, es[i]), append(at, pos[i])
		}
	}
	return kept, at
}

// attemptBurst is an event_count rule: counting events, it is the kind of rule a second
// delivery changes most (the shipped streaming rules count distinct values or pairs).
const attemptBurst = `rule: ATTEMPT_BURST
title: Many attempts by one device
severity: low
description: One device with 6 or more attempts within a day.
type: event_count
mode: streaming
where:
  device_id: {present: true}
group_by: [device_key]
window: 1d
threshold: 6
update_every: 1d
explanation: "device {group_key}: {count} attempts within {window}"
`

// rulesDir is the shipped rules plus ATTEMPT_BURST.
func rulesDir(t *testing.T) string {
	dir := t.TempDir()
	names, err := schemarules.FS.ReadDir(".")
	require.NoError(t, err)
	for _, n := range names {
		if filepath.Ext(n.Name()) != ".yaml" {
			continue
		}
		data, err := schemarules.FS.ReadFile(n.Name())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, n.Name()), data, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "attempt_burst.yaml"), []byte(attemptBurst), 0o644))
	return dir
}

// TestEveryEventTwiceAndARestartGiveTheAlertsOfOneDelivery: every enriched event delivered
// twice, the correlator restarted mid-stream (ClickHouse, where the writer keeps each
// identity once, lagging behind the committed offset), then after the restart the
// partitions' last events and their first ones (16 days old: beyond most rules' horizon)
// replayed once more: the streaming alerts equal, version by version, those of a
// fault-free run of the same events, and each version is published once.
func TestEveryEventTwiceAndARestartGiveTheAlertsOfOneDelivery(t *testing.T) {
	t.Parallel()
	dir := rulesDir(t)
	before, after, want := halfwayPatterns(t, 4, "dd")
	all := append(slices.Clone(before), after...) // in time order: the split is at one time

	// The fault-free run: each event once, ClickHouse holding everything.
	clean := newEnv(t)
	clean.write(all, clean.produce(all))
	cfg := clean.config("once")
	cfg.Scheduled, cfg.RulesDir = false, dir
	r := clean.run(cfg, "once")
	require.Eventually(t, func() bool { return clean.committed("once") }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r.stop())
	wantAlerts := clean.stored()
	var shipped []alert.Alert
	bursts := 0
	for _, a := range wantAlerts {
		if a.Rule == "ATTEMPT_BURST" {
			bursts++
			continue
		}
		shipped = append(shipped, a)
	}
	require.ElementsMatch(t, want, findings(shipped))
	require.NotZero(t, bursts, "ATTEMPT_BURST fires on the background")

	// Every event twice, and a restart.
	e := newEnv(t)
	msgs, first := twice(before)
	pos := e.produce(msgs)
	kept, keptAt := firstCopies(msgs, pos, first)
	require.Len(t, kept, len(before))
	written := len(kept) * 2 / 3 // the writer is behind
	e.write(kept[:written], keptAt[:written])
	cfg = e.config("twice")
	cfg.Scheduled, cfg.RulesDir = false, dir
	r1 := e.run(cfg, "twice-1")
	require.Eventually(t, func() bool { return e.committed("twice") }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r1.stop())

	// After the restart: the last 300 events before the cut and the first 300 replayed
	// once more (upstream replays), then the rest of the stream, twice.
	e.produce(before[len(before)-300:])
	e.produce(before[:300])
	msgs2, _ := twice(after)
	e.produce(msgs2)
	r2 := e.run(cfg, "twice-2")
	require.Eventually(t, func() bool { return e.committed("twice") }, 3*time.Minute, 100*time.Millisecond)
	require.NoError(t, r2.stop())

	got := e.stored()
	byID := func(as []alert.Alert) []alert.Alert {
		sort.Slice(as, func(i, j int) bool { return as[i].ID < as[j].ID })
		return as
	}
	require.Equal(t, byID(wantAlerts), byID(got), "the alerts of a single delivery, versions included")
	for id, versions := range e.published() {
		seen := map[uint64]int{}
		for _, v := range versions {
			seen[v]++
			require.Equal(t, 1, seen[v], "alert %s version %d published once", id, v)
		}
	}
}
