package e2e

// The fault-injection suite of issue #16 (`make test-faults`; its short form runs in `make
// test`). Each fault runs on a pipeline of its own — ingest, enricher, writer and correlator
// as processes, own topics, groups and database — under a steady stream from the tracker
// (every batch retried until answered, as a sensor would), on one broker (the suite's, or
// one of the run's own when the fault stops it) or on a three-broker cluster of the
// suite's own, with a ClickHouse server of the suite's own (or of the run's own when the
// fault stops it), and is held to:
//
//   - acknowledged = rows + dead letters, identity by identity (checkCounted), and no
//     identity twice;
//   - no process that ended by itself (the suite only ends the ones it kills, and restarts
//     them as a supervisor would; one that exits is restarted too, so that the run can
//     still be counted, and the run fails);
//   - the alerts of the fault-free run: the same stream (steady traffic of one seed, with
//     probes that IMPOSSIBLE_TRAVEL and DEVICE_MULTI_SITE must report) must give the same
//     streaming alerts (alertKeys says what is compared, and why the scheduled rules'
//     alerts are only counted);
//   - the peak RSS of each service (VmHWM of its processes) is measured and tabled.
//
// VIGIE_FAULTS=full runs every fault (make test-faults); otherwise the short form runs.
// VIGIE_FAULTS_DOC=<file> writes the table into that file between its markers.
// VIGIE_FAULTS_ONLY=<a,b> keeps the faults whose topology and name (as in the subtests'
// names, e.g. single_broker_down_30_s) hold one of the words, and the reference.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/testenv"
)

// fault is one row of the suite.
type fault struct {
	name string
	// short: in the short form (make test) too; onlyShort: in the short form only.
	short, onlyShort bool
	// topology: "single" (the suite's broker, or a broker of the run's own when ownBroker),
	// "cluster" (the suite's three-broker cluster).
	topology  string
	ownBroker bool // the fault stops the broker: the run gets one of its own
	ownCH     bool // the fault stops ClickHouse: the run gets a server of its own
	// stream is how long the steady stream lasts when nothing stalls it.
	stream time.Duration
	inject func(r *faultRun)
	// reference: the fault-free run whose alerts every other run must give.
	reference bool
}

const (
	shortStream = 30 * time.Second
	longStream  = 60 * time.Second
)

// suiteFaults lists the faults; full selects the whole suite.
func suiteFaults(full bool) []fault {
	stream := shortStream
	if full {
		stream = longStream
	}
	faults := []fault{
		{name: "none (reference)", short: true, topology: "single", stream: stream, reference: true, inject: func(*faultRun) {}},
		// The reference again: what two fault-free runs of the stream have in common.
		{name: "none (control)", topology: "single", stream: stream, inject: func(*faultRun) {}},
		// The short form's one fault run: a little of everything that needs no server of
		// its own but the broker.
		{name: "SIGHUP every service, SIGKILL every service at once, broker down 30 s", short: true, onlyShort: true, topology: "single", ownBroker: true, stream: 40 * time.Second, inject: func(r *faultRun) {
			r.waitShare(0.1)
			r.hup()
			r.logf("SIGHUP to every service")
			r.waitShare(0.2)
			for _, s := range suiteServices {
				r.kill(s)
			}
			time.Sleep(time.Second)
			r.p.startServices(suiteServices...)
			r.logf("every service SIGKILLed and started again")
			brokerOutage(r, 0.45, 30*time.Second)
		}},
	}
	for _, s := range suiteServices {
		faults = append(faults, fault{name: "SIGKILL " + s + " ×3", topology: "single", stream: stream, inject: func(r *faultRun) { killRepeatedly(r, s, 0.2, 0.45, 0.7) }})
	}
	faults = append(faults,
		fault{name: "SIGHUP every service ×3", topology: "single", stream: stream, inject: hupRepeatedly},
		fault{name: "broker down 30 s", topology: "single", ownBroker: true, stream: stream, inject: func(r *faultRun) { brokerOutage(r, 0.3, 30*time.Second) }},
		fault{name: "broker down 5 min", topology: "single", ownBroker: true, stream: 7 * time.Minute, inject: func(r *faultRun) { brokerOutage(r, 0.15, 5*time.Minute) }},
		fault{name: "ClickHouse down 60 s", topology: "single", ownCH: true, stream: stream, inject: clickhouseOutage},
		fault{name: "ingest flooded: 64 × 15 MiB bodies, twice", topology: "single", stream: stream, inject: func(r *faultRun) { r.waitShare(0.3); r.flood(64, 2) }},
		fault{name: "ingest slow clients: 64 trickled, 64 stalled, 64 slow headers", topology: "single", stream: stream, inject: func(r *faultRun) { r.waitShare(0.2); r.slowClients(64) }},
		fault{name: "leader of raw/0, then of enriched/0, SIGKILLed", topology: "cluster", stream: 150 * time.Second, inject: leadersKilled},
		fault{name: "SIGKILL each service in turn", topology: "cluster", stream: stream, inject: killEachInTurn},
		fault{name: "one broker down 5 min", topology: "cluster", stream: 7 * time.Minute, inject: clusterBrokerDown},
	)
	only := strings.Split(os.Getenv("VIGIE_FAULTS_ONLY"), ",")
	var out []fault
	for _, f := range faults {
		inForm := full && !f.onlyShort || !full && f.short
		if inForm && (f.reference || only[0] == "" || slices.ContainsFunc(only, func(o string) bool { return strings.Contains(slug(f.topology+" "+f.name), o) })) {
			out = append(out, f)
		}
	}
	return out
}

// killRepeatedly SIGKILLs service when each share of the stream is acknowledged, and starts
// it again a second later.
func killRepeatedly(r *faultRun, service string, shares ...float64) {
	for _, sh := range shares {
		r.waitShare(sh)
		r.kill(service)
		time.Sleep(time.Second)
		r.restart(service)
		r.logf("%s SIGKILLed at %.0f%% acknowledged and started again", service, 100*sh)
	}
}

// killEachInTurn SIGKILLs each service once, one after the other.
func killEachInTurn(r *faultRun) {
	for i, s := range suiteServices {
		killRepeatedly(r, s, 0.15+0.18*float64(i))
	}
}

// hupRepeatedly sends SIGHUP to every service three times.
func hupRepeatedly(r *faultRun) {
	for _, sh := range []float64{0.2, 0.45, 0.7} {
		r.waitShare(sh)
		r.hup()
		r.logf("SIGHUP to every service at %.0f%% acknowledged", 100*sh)
	}
	time.Sleep(2 * time.Second)
}

// brokerOutage stops the run's broker for d once share of the stream is acknowledged, and
// starts it again; it notes which services say they are not ready 15 s into the outage and
// 5 s before its end.
func brokerOutage(r *faultRun, share float64, d time.Duration) {
	r.waitShare(share)
	require.NoError(r.t, kafkaSh(r.broker.env, "stop", "single"))
	began := time.Now()
	r.logf("broker stopped at %d acknowledged", r.tr.ackedCount())
	time.Sleep(15 * time.Second)
	r.sampleReadiness("broker down 15 s")
	time.Sleep(time.Until(began.Add(d - 5*time.Second)))
	r.sampleReadiness(fmt.Sprintf("broker down %s", (d - 5*time.Second).Round(time.Second)))
	time.Sleep(time.Until(began.Add(d)))
	require.NoError(r.t, kafkaSh(r.broker.env, "start", "single"))
	r.logf("broker started again after %s", time.Since(began).Round(time.Second))
}

// clickhouseOutage stops the run's ClickHouse server for 60 s at 30% of the stream.
func clickhouseOutage(r *faultRun) {
	r.waitShare(0.3)
	r.ch.stop(r.t)
	began := time.Now()
	r.logf("ClickHouse stopped at %d acknowledged", r.tr.ackedCount())
	time.Sleep(15 * time.Second)
	r.sampleReadiness("ClickHouse down 15 s")
	time.Sleep(time.Until(began.Add(55 * time.Second)))
	r.sampleReadiness("ClickHouse down 55 s")
	time.Sleep(time.Until(began.Add(60 * time.Second)))
	r.ch.start(r.t)
	r.logf("ClickHouse started again after %s", time.Since(began).Round(time.Second))
}

// leadersKilled SIGKILLs the leader of the raw topic's partition 0, starts it again 20 s
// later, then does the same to the leader of the enriched topic's partition 0.
func leadersKilled(r *faultRun) {
	for i, c := range []struct {
		topic string
		share float64
	}{{r.p.raw, 0.15}, {r.p.enriched, 0.6}} {
		r.waitShare(c.share)
		node := leaderOf(r.ctx, r.t, r.cluster.brokers, c.topic, 0)
		r.cluster.killNode(r.t, node)
		at := r.tr.ackedCount()
		r.logf("node %d, leader of %s/0, SIGKILLed at %d acknowledged", node, c.topic, at)
		time.Sleep(20 * time.Second)
		r.note("leader %d: %d acknowledged in the 20 s it was down", i+1, r.tr.ackedCount()-at)
		r.cluster.startNode(r.t, node)
	}
}

// clusterBrokerDown stops the leader of the enriched topic's partition 0 for 5 minutes:
// with three replicas and min.insync.replicas 2 nothing may stop meanwhile.
func clusterBrokerDown(r *faultRun) {
	r.waitShare(0.1)
	node := leaderOf(r.ctx, r.t, r.cluster.brokers, r.p.enriched, 0)
	r.cluster.stopNode(r.t, node)
	began, at := time.Now(), r.tr.ackedCount()
	time.Sleep(time.Minute)
	r.sampleReadiness(fmt.Sprintf("node %d down", node))
	time.Sleep(time.Until(began.Add(5 * time.Minute)))
	r.note("node %d down 5 min: %d acknowledged meanwhile", node, r.tr.ackedCount()-at)
	r.cluster.startNode(r.t, node)
}

// suiteResults collects the rows of the parallel runs.
type suiteResults struct {
	mu   sync.Mutex
	rows []*faultResult
}

func (s *suiteResults) add(r *faultResult) {
	s.mu.Lock()
	s.rows = append(s.rows, r)
	s.mu.Unlock()
}

// infra is what the runs share: the suite's broker and ClickHouse server (of the faults
// that do not stop theirs) and, for cluster faults, the suite's cluster.
type infra struct {
	brokers []string
	ch      clickhouse.Config
	cluster *ownCluster
}

func TestFaultSuite(t *testing.T) {
	full := os.Getenv("VIGIE_FAULTS") == "full"
	began := time.Now()
	faults := suiteFaults(full)
	res := &suiteResults{}
	// Faults that do not stop the broker run on a broker of the suite's own, and every run on
	// a ClickHouse server of the suite's own (or of its own): with the other tests' load the
	// shared ClickHouse refused the runs' queries (all its engine slots busy for 5 s) and the
	// shared broker let a fetch wait more than 30 s, when a dozen runs went at once.
	// The short form has one run on the suite's broker (the reference, beside make test's
	// other tests): the shared broker there spares starting one.
	in := infra{ch: startOwnClickHouse(t, "CHSERVER_MAX_QUERIES=12").config(t)}
	if full {
		in.brokers = startOwnBroker(t).brokers
	} else {
		in.brokers = testenv.KafkaBrokers(t)
	}
	t.Run("single", func(t *testing.T) {
		for _, f := range faults {
			if f.topology == "single" {
				t.Run(slug(f.name), func(t *testing.T) {
					t.Parallel()
					runFault(t, f, in, res)
				})
			}
		}
		if !slices.ContainsFunc(faults, func(f fault) bool { return f.topology == "cluster" }) {
			return
		}
		// The cluster faults one after the other (each kills or stops a node of the one
		// cluster), beside the single-broker ones.
		t.Run("cluster", func(t *testing.T) {
			t.Parallel()
			cin := infra{cluster: startOwnCluster(t), ch: in.ch}
			cin.brokers = cin.cluster.brokers
			for _, f := range faults {
				if f.topology == "cluster" {
					t.Run(slug(f.name), func(t *testing.T) { runFault(t, f, cin, res) })
				}
			}
		})
	})
	took := time.Since(began)
	table := suiteTable(t, res.rows, full)
	t.Logf("fault suite (%s) in %s:\n%s", map[bool]string{true: "full", false: "short form"}[full], took.Round(time.Second), table)
	if doc := os.Getenv("VIGIE_FAULTS_DOC"); doc != "" {
		require.NoError(t, writeFaultDoc(doc, table, full, took, t.Failed()))
		t.Logf("table written to %s", doc)
	}
}

// runFault runs one fault and records its row, whatever happens to it.
func runFault(t *testing.T, f fault, in infra, res *suiteResults) {
	began := time.Now()
	timeout := 12*time.Minute + f.stream
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	row := &faultResult{name: f.name, topology: f.topology, reference: f.reference, short: f.short}
	var r *faultRun
	defer func() {
		row.took = time.Since(began)
		row.failed = t.Failed() || !row.counted
		if r != nil {
			row.notes = r.notesOf()
		}
		res.add(row)
	}()
	brokers, ch := in.brokers, in.ch
	var b *ownBroker
	var own *ownClickHouse
	if f.ownBroker {
		b = startOwnBroker(t)
		brokers = b.brokers
	}
	if f.ownCH {
		own = startOwnClickHouse(t)
		ch = own.config(t)
	}
	r = newFaultRun(ctx, t, brokers, ch, f.stream)
	r.broker, r.ch, r.cluster = b, own, in.cluster
	r.stream(f.stream)
	f.inject(r)
	r.finish(row)
}

// slug is a subtest name for a fault.
func slug(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// suiteTable compares every run's alerts with the reference's, fails the suite where they
// differ, and returns the table in Markdown.
func suiteTable(t *testing.T, rows []*faultResult, full bool) string {
	t.Helper()
	order := map[string]int{}
	for i, f := range suiteFaults(full) {
		order[f.topology+" "+f.name] = i
	}
	slices.SortFunc(rows, func(a, b *faultResult) int { return order[a.topology+" "+a.name] - order[b.topology+" "+b.name] })
	var ref *faultResult
	for _, r := range rows {
		if r.reference && r.counted {
			ref = r
		}
	}
	if ref == nil {
		t.Errorf("the fault-free run did not finish: no alerts to compare with")
	} else if len(ref.alerts) == 0 {
		t.Errorf("the fault-free run raised no alert: nothing to compare with")
	}
	var b strings.Builder
	b.WriteString("| fault | brokers | accepted | rows | dead letters | duplicates | exits | alerts ok | peak RSS MB ingest / enricher / writer / correlator | time |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---:|\n")
	var notes []string
	for _, r := range rows {
		alerts := "–"
		switch {
		case !r.counted:
			alerts = "not reached"
		case r.reference:
			alerts = fmt.Sprintf("reference: %d (scheduled %d)", len(r.alerts), len(r.scheduled))
		case ref != nil:
			missing, extra := diff(ref.alerts, r.alerts)
			if len(missing)+len(extra) == 0 {
				alerts = fmt.Sprintf("yes: %d (scheduled %d)", len(r.alerts), len(r.scheduled))
			} else {
				alerts = fmt.Sprintf("**no**: %d missing, %d extra (scheduled %d)", len(missing), len(extra), len(r.scheduled))
				t.Errorf("%s on %s: streaming alerts differ from the fault-free run's: missing %v, extra %v", r.name, r.topology, missing, extra)
			}
		}
		var rss []string
		for _, s := range suiteServices {
			if kb, ok := r.rss[s]; ok && kb > 0 {
				rss = append(rss, fmt.Sprint(kb>>10))
			} else {
				rss = append(rss, "–")
			}
		}
		name := r.name
		if r.failed {
			name += " (**failed**)"
		}
		brokers := "1"
		if r.topology == "cluster" {
			brokers = "3"
		}
		count := func(n int) string {
			if !r.counted {
				return "–"
			}
			return fmt.Sprint(n)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s |\n", name, brokers, count(r.accepted), count(r.rows), count(r.dead), count(r.duplicates),
			len(r.exits), alerts, strings.Join(rss, " / "), r.took.Round(time.Second))
		for _, n := range r.notes {
			notes = append(notes, fmt.Sprintf("- %s (%s brokers): %s", r.name, brokers, n))
		}
		for _, e := range r.exits {
			line, _, _ := strings.Cut(e, "\n")
			notes = append(notes, fmt.Sprintf("- %s (%s brokers): **%s**", r.name, brokers, line))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nWhat the runs saw:\n\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// diff returns what want has that got lacks, and what got has beyond want.
func diff(want, got []string) (missing, extra []string) {
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

const (
	docBegin = "<!-- fault suite table: begin (written by TestFaultSuite) -->"
	docEnd   = "<!-- fault suite table: end -->"
)

// writeFaultDoc puts the table, with the command, date, machine and duration, between the
// markers of the file at path.
func writeFaultDoc(path, table string, full bool, took time.Duration, failed bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	before, rest, ok := strings.Cut(string(data), docBegin)
	_, after, ok2 := strings.Cut(rest, docEnd)
	if !ok || !ok2 {
		return fmt.Errorf("%s has no %q … %q markers", path, docBegin, docEnd)
	}
	cmd := "make test-faults"
	if !full {
		cmd = "go test -run '^TestFaultSuite$' ./e2e/ (short form, as in make test)"
	}
	load, _ := os.ReadFile("/proc/loadavg")
	host, _ := os.Hostname()
	outcome := "passed"
	if failed {
		outcome = "**failed**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n`%s`, %s, on %s (%d cores, load average %s): %s in %s.\n\n%s\n%s",
		docBegin, cmd, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "), outcome, took.Round(time.Second), table, docEnd)
	return os.WriteFile(path, []byte(before+b.String()+after), 0o644)
}
