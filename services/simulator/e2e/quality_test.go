package e2e

// Rule quality, measured (issue 14): every shipped rule through the real pipeline on the
// realistic background alone, weeks of it from an empty history, and on the same background
// with plants and near-miss decoys; a table per rule of what each raised, found and kept
// quiet on, and the targets asserted.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/rulequality"
	"github.com/vigie/vigie/pkg/testenv"
	refdata "github.com/vigie/vigie/schemas/reference"
	shippedrules "github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// The runs: qualityDays from an empty history (the last day's steps wait for a clock that
// passes them, so 36 days give at least 35 days of evaluated steps), at qualityScale of the
// national volume, as fast as ingest takes the events.
const (
	qualityDays  = 36
	qualityScale = 0.02
	qualitySeed  = 14
	// qualitySupplierPhones: the prison-break supplier's phones (5,000 in the real case) at
	// the test's scale.
	qualitySupplierPhones = 300
)

// qualityTimeout bounds a run, and the wait for its correlator (make test gives the package
// 20 minutes).
const qualityTimeout = 15 * time.Minute

// qualityOutEnv names a file the table is also written to (make rule-quality).
const qualityOutEnv = "VIGIE_RULE_QUALITY_OUT"

// qualityRun is what one run raised.
type qualityRun struct {
	truth      rulequality.Truth
	alerts     []event.Alert
	events     int64
	facilities uint64 // facilities with events
	took       time.Duration
	failures   float64
}

func TestRuleQuality(t *testing.T) {
	t.Parallel()
	began := time.Now()
	ruleIDs := shippedRuleIDs(t)
	brokers := testenv.KafkaBrokers(t)
	// A ClickHouse server of the test's own: the two runs' scheduled queries need its engine
	// slots, which the shared server's other tests would take (and it theirs).
	ch := startOwnClickHouse(t).config(t)
	var bg, planted qualityRun
	t.Run("runs", func(t *testing.T) {
		t.Run("background", func(t *testing.T) {
			t.Parallel()
			bg = runQuality(t, brokers, ch, "qb", nil)
		})
		t.Run("planted", func(t *testing.T) {
			t.Parallel()
			planted = runQuality(t, brokers, ch, "qp", traffic.Scenarios)
		})
	})
	if t.Failed() {
		return
	}
	bgRep := rulequality.Score(ruleIDs, rulequality.Truth{}, bg.alerts)
	rep := rulequality.Score(ruleIDs, planted.truth, planted.alerts)
	var table strings.Builder
	fmt.Fprintf(&table, "Rule quality (TestRuleQuality): %d days from an empty history, scale %g, seed %d, through ingest, enricher, writer and correlator; "+
		"background alone %d events at %d facilities (%s), with plants and decoys %d events at %d facilities (%s); %s in all.\n\n",
		qualityDays, qualityScale, qualitySeed, bg.events, bg.facilities, bg.took.Round(time.Second), planted.events, planted.facilities,
		planted.took.Round(time.Second), time.Since(began).Round(time.Second))
	require.NoError(t, rep.WriteTable(&table, rulequality.Column{Header: "background alone", Value: func(rule string) string {
		return strconv.Itoa(bgRep.Row(rule).Findings)
	}}))
	t.Logf("\n%s", table.String())
	out := filepath.Join(os.TempDir(), "vigie-rule-quality.md")
	require.NoError(t, os.WriteFile(out, []byte(table.String()), 0o644))
	t.Logf("table written to %s", out)
	if path := os.Getenv(qualityOutEnv); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(table.String()), 0o644))
		t.Logf("table written to %s", path)
	}

	// (a) the background alone: no finding from any rule.
	for _, row := range bgRep.Rows {
		assert.Zero(t, row.Findings, "%s: findings on the background alone", row.Rule)
	}
	for _, a := range bg.alerts {
		t.Logf("background finding: %s %s at %v (%s)", a.Rule, a.GroupKey, a.Facilities, a.Explanation)
	}
	// (b) with plants and decoys: every plant found within its promised delay, every decoy
	// quiet, no claim on a plant planted before the history its rule needs, a precision of
	// 0.95 or more.
	require.NotEmpty(t, planted.truth.Plants, "the planted run plants nothing")
	for _, row := range rep.Rows {
		assert.Equal(t, row.Plants, row.InTime, "%s: plants found within their promised delay: %v", row.Rule, row.Misses)
		assert.Equal(t, row.Decoys, row.Quiet, "%s: decoys quiet: %v", row.Rule, row.Misses)
		assert.Equal(t, row.Early, row.EarlyQuiet, "%s: quiet on the plants before its history: %v", row.Rule, row.Misses)
	}
	assert.GreaterOrEqual(t, rep.Precision, 0.95, "precision of all findings (%d of %d about a plant)", rep.Matched, rep.Findings)
	assert.Zero(t, bg.failures+planted.failures, "scheduled evaluations that failed")
	t.Logf("rule quality measured in %s", time.Since(began).Round(time.Second))
}

// runQuality replays the period with the scenarios (none: the background alone) through a
// pipeline of its own, correlator included, waits until the correlator has evaluated all it
// can, and returns the alerts and what was planted.
func runQuality(t *testing.T, brokers []string, ch clickhouse.Config, prefix string, scenarios []string) qualityRun {
	ctx, cancel := context.WithTimeout(context.Background(), qualityTimeout)
	defer cancel()
	p := newPipelineWith(t, kafka.Config{Brokers: brokers}, ch, prefix)
	// Every scheduled rule starts before the first event (a rule without a watermark starts
	// scheduler.backfill before the clock) and steps over the whole period.
	p.extraEnv["correlator"] = []string{fmt.Sprintf("VIGIE_CORRELATOR_SCHEDULER_BACKFILL=%dh", (qualityDays+2)*24)}
	p.startServices("ingest", "enricher", "writer", "correlator")

	// The simulator's own binary, as an operator runs it (and without the race detector's
	// cost): the period ends at yesterday's midnight, so that the clock's last readings
	// (below) are in the past whatever the hour of the run.
	runID := prefix + "-" + traffic.Letters(rand.Uint64()>>20)
	summary := filepath.Join(p.dir, "summary.json")
	end := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	scen := "none"
	if len(scenarios) > 0 {
		scen = strings.Join(scenarios, ",")
	}
	began := time.Now()
	cmd := execCommand(filepath.Join(p.bins, "simulator"), "run", "-tokens_file="+filepath.Join(p.dir, "tokens.yaml"), "-ingest.url=http://"+p.ingestAPI,
		fmt.Sprintf("-seed=%d", qualitySeed), fmt.Sprintf("-days=%d", qualityDays), fmt.Sprintf("-scale=%g", qualityScale),
		fmt.Sprintf("-supplier_phones=%d", qualitySupplierPhones), "-invalid_ratio=0", "-wall=0", "-flush_event_time=10m",
		"-end="+end.Format(time.DateOnly), "-run_id="+runID, "-scenarios="+scen, "-summary_file="+summary, "-log.level=warn")
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "simulator run: %s", tail(string(out), 3000))
	data, err := os.ReadFile(summary)
	require.NoError(t, err)
	var st struct {
		Stats struct{ Sent, Accepted, Failed int64 } `json:"stats"`
	}
	require.NoError(t, json.Unmarshal(data, &st))
	truth, err := rulequality.ParseTruth(data)
	require.NoError(t, err, "the planted summary")
	// The pipeline stores serial blocks as ids of the block key: the test holds the key file.
	keys, err := pseudonym.LoadFile(p.keyPath)
	require.NoError(t, err)
	truth = truth.KeyBlocks(keys.Active().BlockID)
	p.logf("sent %d events (%d accepted, %d failed) in %s; %d plants, %d decoys", st.Stats.Sent, st.Stats.Accepted, st.Stats.Failed,
		time.Since(began).Round(time.Millisecond), len(truth.Plants), len(truth.Decoys))
	require.Zero(t, st.Stats.Failed)
	require.Equal(t, st.Stats.Sent, st.Stats.Accepted, "every event accepted")

	// The event clock is a low quantile of the sensors' clocks: at this scale one sensor in
	// ten reports last days before the end, and the scheduled rules would stop there. Every
	// sensor reports an event no rule reads (heartbeats) two hours after the period, so that
	// the clock passes every step of the period by its lateness.
	hb := heartbeats(t, runID, truth.End.Add(2*time.Hour))
	tr := newTracker(p)
	tr.send(ctx, t, hb, sendOptions{Workers: 4, Batch: 200, Retry: true})
	require.Len(t, tr.ackedSet(), len(hb), "every heartbeat acknowledged: %s", tr)

	rp := p.open(ctx)
	sent := st.Stats.Accepted + int64(len(hb))
	p.eventually(ctx, "every event a row", func() (bool, error) {
		n, err := rp.Rows(ctx, runID)
		return n >= sent, err
	})
	p.logf("drained: %d rows", sent)
	failures := p.waitCorrelated(ctx, rp)
	p.logf("correlated")
	var alerts []event.Alert
	p.eventually(ctx, "alerts read", func() (bool, error) {
		alerts, err = readAlerts(ctx, rp)
		return err == nil, err
	})
	p.logf("%d findings: %v", len(alerts), ruleCounts(alerts))
	var facilities uint64
	p.eventually(ctx, "facilities counted", func() (bool, error) {
		err := rp.Conn.QueryRow(ctx, "SELECT uniqExact(facility_id) FROM `"+p.db+"`.detections WHERE observed_at < ?", truth.End).Scan(&facilities)
		return err == nil, err
	})
	return qualityRun{truth: truth, alerts: alerts, events: st.Stats.Accepted, facilities: facilities, took: time.Since(began), failures: failures}
}

// heartbeats is one event per sensor of the reference at t, in its zone, of a kind its type
// may post (ingest refuses any other) and that no rule reads: an RF burst; a managed access
// system's attach without identifiers (no device); a jammer alarm; a seizure of one SIM
// without IMEI (not a search that found nothing); a drone over the facility, which no new
// device follows.
func heartbeats(t *testing.T, runID string, at time.Time) []event.Detector {
	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	var out []event.Detector
	for i, s := range ref.Sensors() {
		e := event.Detector{Common: event.Common{EventID: fmt.Sprintf("%s-hb-%s", runID, traffic.Letters(uint64(i))), SensorID: s.ID,
			ObservedAt: event.NewTime(at), Zone: s.Zone}}
		switch s.Type {
		case reference.SensorMAS:
			e.Kind, e.RAT, e.Outcome = event.KindMASAttach, event.RAT4G, event.OutcomeBlocked
		case reference.SensorJammer:
			e.Kind, e.Jammer = event.KindJammerAlarm, &event.Jammer{Alarm: "output_low", Severity: "info"}
		case reference.SensorSearchReport:
			e.Kind, e.Seizure = event.KindItemSeized, &event.Seizure{SIMs: 1}
		case reference.SensorDrone:
			lat, lon := 46.5, 2.5
			if f := s.Facility; f != nil && f.HasCoords {
				lat, lon = f.Lat, f.Lon
			}
			e.Kind, e.Drone = event.KindDroneSeen, &event.Drone{DetectionSource: "radar", Lat: lat, Lon: lon}
		default:
			e.Kind, e.Band, e.RSSIdBm = event.KindRFBurst, "B3", ptr(-90.0)
		}
		require.Contains(t, s.Type.Kinds(), e.Kind, s.ID)
		out = append(out, e)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// eventually polls cond every second until it holds, for as long as a run may take; an
// error is a busy or slow server on a loaded machine: logged, and polled again.
func (p *pipeline) eventually(ctx context.Context, what string, cond func() (bool, error)) {
	p.t.Helper()
	deadline := time.Now().Add(qualityTimeout)
	var last error
	for n := 0; ; n++ {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		if err != nil && (last == nil || n%30 == 0) {
			p.logf("%s: %v (polled again)", what, err)
		}
		last = err
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %s (last error: %v)", what, qualityTimeout, last)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			p.t.Fatalf("%s: %v (last error: %v)", what, ctx.Err(), last)
		}
	}
}

// waitCorrelated waits until the correlator has nothing left to do: its group has committed
// every enriched event, and its scheduled rules (evaluations, watermarks) and the alerts
// table have not moved for quiet while the scheduler ticks every second. It returns the
// scheduled evaluations that failed.
func (p *pipeline) waitCorrelated(ctx context.Context, rp *report.Pipeline) float64 {
	p.t.Helper()
	const quiet = 20 * time.Second
	deadline := time.Now().Add(qualityTimeout)
	last, since := "", time.Now()
	var failures float64
	polls := 0
	for {
		var state []string
		l, err := lag(ctx, p.kafka, p.group("correlator"), p.enriched)
		if err == nil {
			var m map[string]float64
			if m, err = scrape(ctx, p.admins["correlator"]); err == nil {
				failures = m["vigie_correlator_scheduled_failures_total"]
				state = append(state, fmt.Sprintf("lag %d, evaluations %g, clock %s", l, m["vigie_correlator_scheduled_evaluations_total"],
					time.Unix(int64(m["vigie_correlator_event_clock_seconds"]), 0).UTC().Format(time.RFC3339)))
			}
		}
		if err == nil {
			var marks map[string]time.Time
			if marks, err = rp.Watermarks(ctx); err == nil {
				state = append(state, fmt.Sprint(marks))
			}
		}
		if err == nil {
			var n, versions uint64
			err = rp.Conn.QueryRow(ctx, "SELECT count(), sum(version) FROM `"+p.db+"`.alerts FINAL").Scan(&n, &versions)
			state = append(state, fmt.Sprintf("findings %d (versions %d)", n, versions))
			if l > 0 {
				state = append(state, "lagging")
			}
		}
		switch s := strings.Join(state, "; "); {
		case err != nil:
			last, since = "", time.Now()
			p.logf("correlator state: %v", err)
		case s != last:
			last, since = s, time.Now()
			if polls++; polls%15 == 0 {
				p.logf("correlator: %s", s)
			}
		case !strings.Contains(s, "lagging") && time.Since(since) >= quiet:
			p.logf("correlator done: %s", s)
			p.logEvaluations(ctx)
			return failures
		}
		if time.Now().After(deadline) {
			p.logEvaluations(ctx)
			p.t.Fatalf("the correlator did not settle within %s: %s", qualityTimeout, last)
		}
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			p.t.Fatalf("the correlator did not settle: %v (%s)", ctx.Err(), last)
		}
	}
}

// logEvaluations logs the scheduled evaluations per rule: how many, and their time.
func (p *pipeline) logEvaluations(ctx context.Context) {
	m, err := scrape(ctx, p.admins["correlator"])
	if err != nil {
		p.logf("scheduled evaluations: %v", err)
		return
	}
	var per []string
	for k, v := range m {
		if rule, ok := strings.CutPrefix(k, "vigie_correlator_scheduled_evaluation_seconds_count/"); ok {
			per = append(per, fmt.Sprintf("%s %g in %.1fs", rule, v, m["vigie_correlator_scheduled_evaluation_seconds_sum/"+rule]))
		}
	}
	slices.Sort(per)
	p.logf("scheduled evaluations: %s", strings.Join(per, ", "))
}

// scrape reads the admin endpoint's metrics and sums each metric over its labels.
func scrape(ctx context.Context, admin string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", admin, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			name = line[:i]
			_, rest, ok = strings.Cut(line[i:], "} ")
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
			out[name] += v
			if strings.HasPrefix(name, "vigie_correlator_scheduled_evaluation_seconds_") {
				if i := strings.Index(line, `rule="`); i >= 0 {
					rule, _, _ := strings.Cut(line[i+6:], `"`)
					out[name+"/"+rule] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// readAlerts returns the latest version of every finding of the run's database.
func readAlerts(ctx context.Context, rp *report.Pipeline) ([]event.Alert, error) {
	rows, err := rp.Conn.Query(ctx, "SELECT alert_id, rule, group_key, facilities, first_evidence_at, last_evidence_at, created_at, explanation FROM `"+
		rp.Database+"`.alerts FINAL ORDER BY rule, created_at, alert_id")
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	defer rows.Close()
	var out []event.Alert
	for rows.Next() {
		var a event.Alert
		if err := rows.Scan(&a.ID, &a.Rule, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt, &a.CreatedAt, &a.Explanation); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func ruleCounts(alerts []event.Alert) map[string]int {
	out := map[string]int{}
	for _, a := range alerts {
		out[a.Rule]++
	}
	return out
}

// shippedRuleIDs lists the enabled rules of schemas/rules, in file order.
func shippedRuleIDs(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(shippedrules.FS, "*.yaml")
	require.NoError(t, err)
	var ids []string
	for _, f := range files {
		data, err := shippedrules.FS.ReadFile(f)
		require.NoError(t, err)
		var r struct {
			Rule    string `yaml:"rule"`
			Enabled *bool  `yaml:"enabled"`
		}
		require.NoError(t, yaml.Unmarshal(data, &r), f)
		require.NotEmpty(t, r.Rule, f)
		if r.Enabled == nil || *r.Enabled {
			ids = append(ids, r.Rule)
		}
	}
	slices.Sort(ids)
	return ids
}
