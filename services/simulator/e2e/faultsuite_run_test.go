package e2e

// One run of the fault suite: the four services of a pipeline under a steady stream from the
// tracker, a fault injected while it flows, then what the run is held to — acknowledged =
// rows + dead letters, no identity twice, no process that ended by itself, the alerts of the
// fault-free run — and the peak memory of every process.

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/schemas/rules"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// suiteServices are the services of every run, in start order.
var suiteServices = []string{"ingest", "enricher", "writer", "correlator"}

// Steady traffic of the suite's stream: suiteTicks steps of suiteRate events of a standing
// population of contraband phones (each at one facility), with a probe every second step —
// a new IMEI seen at two facilities more than 300 km apart at the same time, which
// IMPOSSIBLE_TRAVEL and DEVICE_MULTI_SITE must report.
const (
	suiteTicks  = 40
	suiteRate   = 100
	suitePhones = 2000
)

// suiteEvents is the run's stream, observed in real time from now over d (the steps spread
// evenly over it), as a fleet sends it: the same seed and the same steps in every run,
// whatever its length, so that every run must end with the alerts of the fault-free one;
// only the event ids (the run id) and the times differ between runs. Observing in real time
// matters: a replay of days in a minute puts hours of event time between two requests, and
// a streaming rule's one-hour window then depends on the order in which the enricher's
// partitions deliver, not on the events.
func suiteEvents(t *testing.T, runID string, d time.Duration) []event.Detector {
	t.Helper()
	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	w, err := world.New(ref)
	require.NoError(t, err)
	st, err := traffic.NewSteady(w, 41, runID, suitePhones)
	require.NoError(t, err)
	var out []event.Detector
	add := func(e *event.Detector) { out = append(out, *e) }
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	for i := range suiteTicks {
		now := t0.Add(time.Duration(i) * d / suiteTicks)
		st.Events(now, suiteRate, add)
		if i%2 == 0 {
			st.Probe(now, add)
		}
	}
	return out
}

// faultRun is one fault's pipeline, stream and measures.
type faultRun struct {
	t      *testing.T
	ctx    context.Context
	p      *pipeline
	tr     *tracker
	events []event.Detector
	runID  string
	done   chan struct{} // closed when the stream has ended
	// streamed is when the stream began.
	streamed time.Time
	// stopWatch stops watching for exits (before the services are stopped); idempotent.
	stopWatch func()

	broker  *ownBroker     // the run's own broker, when the fault stops it
	ch      *ownClickHouse // the run's own ClickHouse server, when the fault stops it
	cluster *ownCluster    // the suite's cluster, for cluster faults

	mu     sync.Mutex
	killed map[*proc]bool   // processes the fault ended itself
	exited map[*proc]string // processes that ended by themselves, with why
	hwm    map[string]int64 // service -> highest VmHWM (kB) of its processes so far
	notes  []string         // what the fault saw, for the table
}

func (r *faultRun) logf(format string, args ...any) { r.p.logf(format, args...) }

func (r *faultRun) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.logf("%s", s)
	r.mu.Lock()
	r.notes = append(r.notes, s)
	r.mu.Unlock()
}

// waitShare waits until share of the stream's events are acknowledged.
func (r *faultRun) waitShare(share float64) {
	r.t.Helper()
	waitAcked(r.t, r.tr, r.done, int(share*float64(len(r.events))))
}

// current returns the running process of each service.
func (r *faultRun) current() map[string]*proc {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return maps.Clone(r.p.procs)
}

// recordHWM keeps the peak memory of pr's process (before it is killed or stopped).
func (r *faultRun) recordHWM(service string, pr *proc) {
	hwm, _ := memoryKB(pr.cmd.Process.Pid)
	r.mu.Lock()
	r.hwm[service] = max(r.hwm[service], hwm)
	r.mu.Unlock()
}

// kill SIGKILLs a service, as a crash or the OOM killer would.
func (r *faultRun) kill(service string) {
	r.t.Helper()
	pr := r.current()[service]
	require.NotNil(r.t, pr, service)
	r.recordHWM(service, pr)
	r.mu.Lock()
	r.killed[pr] = true
	r.mu.Unlock()
	pr.kill()
}

// restart starts a service again (a supervisor would) and waits until it is ready.
func (r *faultRun) restart(service string) {
	r.t.Helper()
	r.p.startServices(service)
}

// hup sends SIGHUP to every running service.
func (r *faultRun) hup() {
	r.t.Helper()
	for _, s := range suiteServices {
		if pr := r.current()[s]; pr != nil {
			require.NoError(r.t, pr.cmd.Process.Signal(syscall.SIGHUP), s)
		}
	}
}

// watch records, until ctx ends, every process that ends without the fault having ended it.
func (r *faultRun) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for s, pr := range r.current() {
			var err error
			select {
			case err = <-pr.done:
				pr.done <- err
			default:
				continue
			}
			r.mu.Lock()
			_, seen := r.exited[pr]
			if !r.killed[pr] && !seen {
				log, _ := os.ReadFile(pr.logPath)
				r.exited[pr] = fmt.Sprintf("%s (%s) exited: %v; last log lines:\n%s", s, pr.name, err, tail(string(log), 1500))
				r.mu.Unlock()
				r.logf("%s", r.exited[pr])
				continue
			}
			r.mu.Unlock()
		}
	}
}

// reap starts again every service whose process ended by itself (as a supervisor would), so
// that the run can still be counted; the exit stays recorded.
func (r *faultRun) reap() {
	r.t.Helper()
	for _, s := range suiteServices {
		pr := r.current()[s]
		r.mu.Lock()
		_, gone := r.exited[pr]
		r.mu.Unlock()
		if gone {
			r.logf("starting %s again after its exit", s)
			r.restart(s)
		}
	}
}

// readiness returns each running service's /readyz status (0: no answer).
func (r *faultRun) readiness() map[string]int {
	out := map[string]int{}
	cl := &http.Client{Timeout: 5 * time.Second}
	for s, pr := range r.current() {
		resp, err := cl.Get("http://" + pr.admin + "/readyz")
		if err != nil {
			out[s] = 0
			continue
		}
		resp.Body.Close()
		out[s] = resp.StatusCode
	}
	return out
}

// sampleReadiness notes which services say they are not ready (during an outage).
func (r *faultRun) sampleReadiness(when string) {
	var notReady []string
	for _, s := range suiteServices {
		if st, ok := r.readiness()[s]; ok && st != http.StatusOK {
			notReady = append(notReady, fmt.Sprintf("%s %d", s, st))
		}
	}
	if len(notReady) == 0 {
		r.note("%s: every service ready", when)
		return
	}
	r.note("%s: not ready: %s", when, strings.Join(notReady, ", "))
}

// waitAllReady waits until every service answers /readyz 200 (after a fault healed).
func (r *faultRun) waitAllReady(within time.Duration) {
	r.t.Helper()
	var last map[string]int
	ok := assert.Eventually(r.t, func() bool {
		last = r.readiness()
		for _, s := range suiteServices {
			if last[s] != http.StatusOK {
				return false
			}
		}
		return true
	}, within, time.Second)
	if !ok {
		r.note("not ready %s after the fault: %v", within, last)
	}
}

// alertKeys are the alerts of the streaming rules as compared between runs: rule, group key
// (the device) and facilities, each once. Not the alert id: it holds the event time the
// finding was first raised, which depends on the order in which one device's events from
// two sensors (two raw partitions) reach its enriched partition, and that order is the
// enricher's, run to run; nor how many findings one pattern was cut into. The scheduled
// rules' alerts are returned apart (scheduled) and only counted: with events minutes old
// they seldom complete a step within a run, and when they do it depends on when rows reach
// ClickHouse (in a replay of two weeks in a minute, tried first, two fault-free runs gave
// different NEW_TAC_NATIONAL and DRONE_THEN_NEW_DEVICE alerts).
func alertKeys(alerts []report.Alert, streaming map[string]bool) (keys, scheduled []string) {
	for _, a := range alerts {
		fac := slices.Clone(a.Facilities)
		slices.Sort(fac)
		if streaming[a.Rule] {
			keys = append(keys, fmt.Sprintf("%s %s [%s]", a.Rule, a.GroupKey, strings.Join(fac, ",")))
		} else {
			scheduled = append(scheduled, fmt.Sprintf("%s %s [%s] n=%d", a.Rule, a.GroupKey, strings.Join(fac, ","), a.EvidenceCount))
		}
	}
	slices.Sort(keys)
	slices.Sort(scheduled)
	return slices.Compact(keys), scheduled
}

// streamingRules returns the rules of the correlator's default set that run per event
// (mode: streaming).
func streamingRules(t *testing.T) map[string]bool {
	t.Helper()
	files, err := fs.Glob(rules.FS, "*.yaml")
	require.NoError(t, err)
	out := map[string]bool{}
	for _, f := range files {
		data, err := rules.FS.ReadFile(f)
		require.NoError(t, err)
		var r struct{ Rule, Mode string }
		require.NoError(t, yaml.Unmarshal(data, &r), f)
		if r.Mode == "streaming" {
			out[r.Rule] = true
		}
	}
	require.NotEmpty(t, out, "no streaming rule in schemas/rules")
	return out
}

// settledAlerts waits until the correlator has committed everything of the enriched topic and
// its alerts and scheduled watermarks have held still for 10 s, and returns the streaming
// rules' alert keys and the scheduled rules' alerts and watermarks.
func (r *faultRun) settledAlerts(rp *report.Pipeline) (keys, scheduled []string, marks map[string]time.Time) {
	r.t.Helper()
	ctx := r.ctx
	streaming := streamingRules(r.t)
	from, to := r.events[0].ObservedAt.Time.Add(-time.Hour), time.Now().Add(time.Hour)
	stableSince := time.Time{}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		l, err := lag(ctx, r.p.kafka, r.p.group("correlator"), r.p.enriched)
		var alerts []report.Alert
		var m map[string]time.Time
		if err == nil && l == 0 {
			alerts, err = rp.Alerts(ctx, from, to)
			if err == nil {
				m, err = rp.Watermarks(ctx)
			}
		} else if err == nil {
			err = fmt.Errorf("correlator lag %d", l)
		}
		k, sch := alertKeys(alerts, streaming)
		switch {
		case err != nil:
			stableSince = time.Time{}
		case stableSince.IsZero() || !slices.Equal(k, keys) || !slices.Equal(sch, scheduled) || !maps.Equal(m, marks):
			keys, scheduled, marks, stableSince = k, sch, m, time.Now()
		case time.Since(stableSince) >= 10*time.Second:
			return keys, scheduled, marks
		}
		if time.Now().After(deadline) {
			r.t.Errorf("alerts not settled after 4 minutes (%v); %d alerts so far", err, len(keys))
			return keys, scheduled, marks
		}
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			r.t.Fatalf("alerts not settled: %v", ctx.Err())
		}
	}
}

// newFaultRun makes the run's stream (to last stream) and pipeline (with the correlator) on
// brokers and the ClickHouse server of ch, and starts its services.
func newFaultRun(ctx context.Context, t *testing.T, brokers []string, ch clickhouse.Config, stream time.Duration) *faultRun {
	t.Helper()
	runID := "fs-" + traffic.Letters(rand.Uint64()>>20)
	r := &faultRun{
		t: t, ctx: ctx, runID: runID, done: make(chan struct{}),
		killed: map[*proc]bool{}, exited: map[*proc]string{}, hwm: map[string]int64{},
	}
	r.events = suiteEvents(t, runID, stream)
	r.p = newPipelineWith(t, kafka.Config{Brokers: brokers}, ch, "fs")
	// The scheduled rules every 10 s, not every second: a dozen correlators ticking each
	// second kept ClickHouse's engine busy, and their alerts are only shown (alertKeys).
	r.p.extraEnv["correlator"] = []string{"VIGIE_CORRELATOR_SCHEDULER_TICK=10s"}
	r.p.startServices(suiteServices...)
	wctx, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); r.watch(wctx) }()
	r.stopWatch = func() { cancel(); <-watched }
	t.Cleanup(r.stopWatch)
	r.tr = newTracker(r.p)
	r.logf("pipeline started, %d events to stream", len(r.events))
	return r
}

// stream sends the events in the background at a steady rate that lasts about d when nothing
// stalls it; every batch is retried until ingest answers it (as a sensor would).
func (r *faultRun) stream(d time.Duration) {
	rate := float64(len(r.events)) / d.Seconds()
	r.streamed = time.Now()
	go func() {
		defer close(r.done)
		// Batches of one sensor within a step of events (a second of the fleet's traffic in
		// the short form), as sensors that flush every second.
		// 16 requests in flight: small requests, each waiting for Kafka's acknowledgement.
		r.tr.send(r.ctx, r.t, r.events, sendOptions{Workers: 16, Batch: 100, Window: suiteRate, Rate: rate, Retry: true})
	}()
}

// faultResult is one row of the suite's table.
type faultResult struct {
	name, topology                    string
	accepted, rows, dead, duplicates  int
	exits                             []string
	alerts, scheduled                 []string
	marks                             map[string]time.Time
	rss                               map[string]int64 // service -> peak kB
	took                              time.Duration
	failed, reference, counted, short bool
	notes                             []string
}

// finish waits for the end of the stream and holds the run to its count: exits, alerts,
// peak memory, then acknowledged = rows + dead letters identity by identity (checkCounted,
// which stops the services).
func (r *faultRun) finish(res *faultResult) {
	t := r.t
	t.Helper()
	<-r.done
	r.logf("stream ended after %s: %s", time.Since(r.streamed).Round(time.Second), r.tr)
	acked := r.tr.ackedSet()
	for i := range r.events {
		require.True(t, acked[identOf(&r.events[i])], "event %s of the stream not acknowledged: %s", r.events[i].EventID, r.tr)
	}
	r.reap()
	r.waitAllReady(2 * time.Minute)
	rp := r.p.open(r.ctx)
	r.p.waitDrained(r.ctx, rp, r.tr.ackedSet(), 6*time.Minute)
	res.alerts, res.scheduled, res.marks = r.settledAlerts(rp)
	r.logf("alerts settled: streaming %s; scheduled %s; watermarks %v", strings.Join(res.alerts, "; "), strings.Join(res.scheduled, "; "), res.marks)
	for s, pr := range r.current() {
		r.recordHWM(s, pr)
	}
	r.mu.Lock()
	res.rss = maps.Clone(r.hwm)
	for _, why := range r.exited {
		res.exits = append(res.exits, why)
	}
	r.mu.Unlock()
	for _, why := range res.exits {
		t.Errorf("a process ended by itself: %s", why)
	}
	r.stopWatch() // checkCounted stops the services
	tl := r.p.checkCounted(r.ctx, r.tr, nil)
	res.accepted, res.rows, res.dead = len(r.tr.ackedSet()), tl.total, len(tl.downstream)
	res.duplicates = tl.total - len(tl.rows)
	res.counted = true
}

// notesOf returns the run's notes.
func (r *faultRun) notesOf() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}
