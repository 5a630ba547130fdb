package sched

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Replayed is what Replay found: the latest version of each finding, in the order first
// raised, and each rule's history.
type Replayed struct {
	Alerts []alert.Alert
	Rules  []History
}

// History is how much of the history a rule's claims need the data covers at the clock.
type History struct {
	Rule string
	// Needs is the history a facility's data must cover for the rule's claims (0: none),
	// Why how it is derived (rules.Rule.Needs).
	Needs time.Duration
	Why   string
	// Covered of Facilities (those that ever reported) cover it at the clock; a rule that
	// needs history and has none covered is warming up. FirstCovered is the end of its
	// first step that some facility covers (zero: none yet).
	Covered, Facilities int
	FirstCovered        time.Time
}

// WarmingUp reports whether no facility covers the rule's need yet.
func (h History) WarmingUp() bool { return h.Needs > 0 && h.Covered == 0 }

// Replay evaluates the scheduled rules among rs on database as a scheduler would that
// starts without watermarks or findings at from and whose event clock stands at to: every
// step ending after from (from minus the rule's lateness, rounded down to its step) up to to
// minus its lateness, through the same plan, coverage, pre-checks and evaluations as Tick.
// It writes nothing: the watermarks and open findings live in memory (a replayStore), so a
// read-only user can run it on a live database, and the findings a rule of the same id has
// there do not hide those of the rule being tried. It is what `vigiectl rules test` runs on
// a database.
func Replay(ctx context.Context, cfg Config, conn driver.Conn, database string, rs []*rules.Rule, from, to time.Time, logger *zap.Logger) (Replayed, error) {
	if !to.After(from) {
		return Replayed{}, fmt.Errorf("replay: to (%s) must be after from (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	mem := &memoryStore{clockAt: to.UTC(), marks: map[string]time.Time{}, latest: map[string]int{}}
	cfg.Backfill = to.Sub(from)
	cfg.MaxStepsPerTick = 1 << 30 // one tick does every step
	s := New(cfg, conn, database, rs, mem, logger, prometheus.NewRegistry())
	// The coverage first: without it the rules that need history fail, after the others
	// have run.
	cov, err := s.readCoverage(ctx)
	if err != nil {
		return Replayed{}, err
	}
	// A tick evaluates every step up to the clock, unless a rule's step fails after its
	// retries: a second tick would only fail again, so the first error ends the replay.
	if _, err := s.Tick(ctx); err != nil {
		return Replayed{}, err
	}
	out := Replayed{Alerts: mem.found()}
	for _, r := range s.Rules() {
		need, why := r.Needs()
		h := History{Rule: r.ID, Needs: need, Why: why, Covered: cov.covered(need, to), Facilities: len(cov.firsts)}
		if first, ok := cov.from(need, r.Every); ok {
			h.FirstCovered = first
		}
		out.Rules = append(out.Rules, h)
	}
	return out, nil
}

// replayStore is a sink that also keeps what the scheduler otherwise keeps in ClickHouse —
// the watermarks (correlator_watermarks) and the open findings (the alerts it wrote) — and
// gives its event clock: a scheduler whose sink is one runs on it alone (Replay).
type replayStore interface {
	alert.Sink
	clock() time.Time
	watermark(rule string) time.Time
	setWatermark(rule string, end time.Time)
	open(rule string, since time.Time) map[string]alert.Alert
}

// memoryStore is Replay's replayStore.
type memoryStore struct {
	clockAt time.Time
	mu      sync.Mutex
	marks   map[string]time.Time
	alerts  []alert.Alert  // latest version of each finding, in the order first raised
	latest  map[string]int // alert id -> index in alerts
}

var _ replayStore = (*memoryStore)(nil)

func (m *memoryStore) Write(_ context.Context, as []alert.Alert) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range as {
		if i, ok := m.latest[a.ID]; ok {
			if a.Version >= m.alerts[i].Version {
				m.alerts[i] = a
			}
			continue
		}
		m.latest[a.ID] = len(m.alerts)
		m.alerts = append(m.alerts, a)
	}
	return nil
}

func (m *memoryStore) clock() time.Time { return m.clockAt }

func (m *memoryStore) watermark(rule string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marks[rule]
}

func (m *memoryStore) setWatermark(rule string, end time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end.After(m.marks[rule]) {
		m.marks[rule] = end
	}
}

// open is openAlerts' answer: the latest version of rule's findings whose window ends at or
// after since, by group key (the one whose window ends last, as the table query orders).
func (m *memoryStore) open(rule string, since time.Time) map[string]alert.Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var as []alert.Alert
	for _, a := range m.alerts {
		if a.Rule == rule && !a.WindowEnd.Before(since) {
			as = append(as, a)
		}
	}
	slices.SortStableFunc(as, func(a, b alert.Alert) int { return a.WindowEnd.Compare(b.WindowEnd) })
	out := map[string]alert.Alert{}
	for _, a := range as {
		out[a.GroupKey] = cloneAlert(a)
	}
	return out
}

func (m *memoryStore) found() []alert.Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]alert.Alert, len(m.alerts))
	for i, a := range m.alerts {
		out[i] = cloneAlert(a)
	}
	return out
}

// cloneAlert copies the slices an extension appends to.
func cloneAlert(a alert.Alert) alert.Alert {
	a.Facilities = slices.Clone(a.Facilities)
	a.EvidenceIDs = slices.Clone(a.EvidenceIDs)
	return a
}
