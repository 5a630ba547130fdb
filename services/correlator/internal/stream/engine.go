// Package stream evaluates the streaming rules: per event, in memory, with state per device
// (the key of detections.enriched.v1), so that one correlator instance owning a partition
// sees each of its devices' whole history. Event time drives every window; state older than
// a rule's window behind the partition's watermark is evicted, so memory is bounded by the
// devices active within the longest window, and by configuration whatever the events
// (StateConfig: distinct values and events per device, entries per partition). An open
// finding emits a new version when it gains a facility, doubles its count or reaches a cap,
// and otherwise at most once per update_every, however many events extend it. The
// watermark comes from per-sensor clocks
// (internal/clock): no single sensor can move it forward or hold it back for long. Each
// identity (sensor_id, event_id) is applied once: the engine remembers those it applied
// within its rules' horizon (window + lateness) and ignores a second delivery. The state,
// remembered identities included, is a pure function of the partition's events in offset
// order, which is what lets it be rebuilt from ClickHouse after a restart or a rebalance
// (see Rebuilder).
package stream

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/clock"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// evictEvery is how far event time advances between two eviction sweeps.
const evictEvery = time.Minute

// EngineConfig bounds an engine's clock, its memory of identities and its state.
type EngineConfig struct {
	Clock clock.Config
	// MaxIdentities bounds the identities remembered (0: bounded by the horizon only).
	MaxIdentities int
	// State bounds the rules' state (a zero field: that bound off). A rule needing more
	// per device than State allows gets what it needs (StateConfig.Check refuses such
	// rules at start and reload).
	State StateConfig
}

// DefaultEngineConfig is the default clock, at most 10 million identities (about 400 MB)
// and the default state caps per partition.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{Clock: clock.DefaultConfig(), MaxIdentities: 10_000_000, State: DefaultStateConfig()}
}

// Engine holds one partition's streaming state. It is not safe for concurrent use: each
// partition has its own engine, driven by one goroutine.
type Engine struct {
	cfg     EngineConfig
	evals   []evaluator
	horizon []int64 // per rule: window + lateness, ms
	devices map[string]*device
	ref     *reference.Snapshot
	intern  map[string]string

	entries    int   // state entries held (StateConfig.MaxEntries)
	maxSeen    int64 // highest event time applied, ms
	lastSweep  int64
	sinceSweep int
	stats      Stats

	// The event clock: per-sensor clocks, the watermark computed from them every
	// clockEvery events at least, and the wall time last read.
	sources    map[string]*sourceClock
	wm         int64
	sinceClock int
	now        int64
	readings   []clock.Reading
	scratch    []int64

	seen identities
	// wallClock reads wall time (time.Now).
	wallClock func() time.Time
}

// sourceClock is one sensor's latest event time and latest receipt, ms.
type sourceClock struct{ clock, arrival int64 }

// clockEvery is the fewest events between two computations of the watermark.
const clockEvery = 256

// Stats counts what an engine did, for metrics.
type Stats struct {
	Events      uint64
	Evaluations []uint64 // per rule, in Rules order
	Evicted     uint64
	// Refused counts events not applied for their time: from the future, beyond
	// retention, or late for every rule whose filter they matched.
	Future, BeyondRetention, Late uint64
	// Duplicates counts second deliveries of an identity already applied (ignored).
	Duplicates uint64
	// IdentitiesDropped counts identities forgotten before their horizon (MaxIdentities).
	IdentitiesDropped uint64
	// Overflow counts, per rule in Rules order, what the state caps kept out.
	Overflow []Overflow
	// Sheds counts the times the partition held more than State.MaxEntries.
	Sheds uint64
}

// device is the state of one device: one slot per streaming rule, nil when the rule holds
// nothing for it.
type device struct {
	slots []state
}

// state is a rule's state for one device. Its open finding is a pointer, nil for the vast
// majority of devices, which keeps the per-device state small.
type state interface {
	episode() **episode
	// holds reports whether the state keeps anything (values, events, an open finding).
	holds() bool
	// size is the entries the state holds (values, events or first-step events, and the
	// open finding), for StateConfig.MaxEntries.
	size() int
	// latest is the latest event time the state holds, ms.
	latest() int64
}

// evaluator is the Go code of one rule type, bound to one rule instance.
type evaluator interface {
	rule() *rules.Rule
	// observe folds e (already matched against the rule's where filter) into s (nil when
	// empty) and returns the state and a finding when the rule's condition holds at e.
	observe(s state, e *observed) (state, *finding)
	// evict drops what is older than before (ms) and returns nil when nothing is left.
	evict(s state, before int64) state
}

// observed is an event being evaluated, with what every evaluator needs precomputed.
type observed struct {
	*event.Enriched
	t        int64 // observed_at, ms
	facility string
}

// finding is what a rule found at one event: the material of an alert.
type finding struct {
	at          int64
	first, last int64
	facilities  []string
	evidence    []string
	count       int
	values      map[string]string
	// capped names the fields at their StateConfig.MaxValues cap (their count is a lower
	// bound); refused is the sightings of untracked values at this event.
	capped  []string
	refused uint64
	cap     int
}

// NewEngine returns an engine for the streaming rules among rs. ref gives facility
// coordinates when an event lacks them (may be nil).
func NewEngine(rs []*rules.Rule, ref *reference.Snapshot) *Engine {
	return NewEngineConfig(rs, ref, DefaultEngineConfig())
}

// NewEngineConfig is NewEngine with cfg's clock and bound on identities.
func NewEngineConfig(rs []*rules.Rule, ref *reference.Snapshot, cfg EngineConfig) *Engine {
	e := &Engine{cfg: cfg, devices: map[string]*device{}, ref: ref, intern: map[string]string{},
		sources: map[string]*sourceClock{}, seen: newIdentities(cfg.MaxIdentities), wallClock: time.Now}
	for _, r := range rs {
		if r.Mode != rules.Streaming {
			continue
		}
		switch r.Type {
		case rules.ValueCount:
			e.evals = append(e.evals, &valueCount{r: r})
		case rules.EventCount:
			// It keeps its last threshold events, within State.MaxEvents (Check).
			e.evals = append(e.evals, &eventCount{r: r})
		case rules.Sequence:
			e.evals = append(e.evals, &sequence{r: r, eng: e})
		}
	}
	e.stats.Evaluations = make([]uint64, len(e.evals))
	e.stats.Overflow = make([]Overflow, len(e.evals))
	for i, ev := range e.evals {
		if vc, ok := ev.(*valueCount); ok {
			vc.refused = &e.stats.Overflow[i].Values
			if cfg.State.MaxValues > 0 {
				vc.max = cfg.State.MaxValues
				for _, d := range vc.r.Distinct {
					vc.max = max(vc.max, d.Min)
				}
			}
		}
		e.horizon = append(e.horizon, ev.rule().Horizon().Milliseconds()+cfg.Clock.Lateness.Milliseconds())
	}
	return e
}

// Config is the engine's configuration.
func (e *Engine) Config() EngineConfig { return e.cfg }

// Rules lists the engine's rules in evaluation order.
func (e *Engine) Rules() []*rules.Rule {
	out := make([]*rules.Rule, len(e.evals))
	for i, ev := range e.evals {
		out[i] = ev.rule()
	}
	return out
}

// Stats returns the counters so far (its slices are the engine's: copy to keep them).
func (e *Engine) Stats() Stats {
	st := e.stats
	st.IdentitiesDropped = e.seen.dropped
	return st
}

// Entries is the number of state entries held (StateConfig.MaxEntries).
func (e *Engine) Entries() int { return e.entries }

// Identities is the number of identities remembered.
func (e *Engine) Identities() int { return e.seen.len() }

// Watermark is the partition's event-time watermark (see internal/clock).
func (e *Engine) Watermark() time.Time { return time.UnixMilli(e.wm).UTC() }

// SetReference replaces the reference data that gives facility coordinates when an event
// lacks them (may be nil). Like Observe, it is called from the engine's goroutine.
func (e *Engine) SetReference(ref *reference.Snapshot) { e.ref = ref }

// Devices is the number of devices holding state.
func (e *Engine) Devices() int { return len(e.devices) }

// MaxEventTime is the highest event time applied.
func (e *Engine) MaxEventTime() time.Time { return time.UnixMilli(e.maxSeen).UTC() }

// Observe evaluates every streaming rule on ev and appends the alerts it raises or extends
// to out. With emit false (rebuilding state from history already handled) the state,
// including open findings, evolves exactly the same but no alert is returned. An event
// whose identity was already applied, or whose time is out of bounds (see internal/clock),
// changes nothing; a rule does not see an event older than its horizon (window + lateness)
// behind the watermark.
func (e *Engine) Observe(ev *event.Enriched, emit bool, out []alert.Alert) []alert.Alert {
	e.stats.Events++
	t, r := ev.ObservedAt.UnixMilli(), ev.ReceivedAt.UnixMilli()
	if r <= 0 || r > e.now {
		e.now = e.wallClock().UnixMilli()
	}
	if r <= 0 || r > e.now { // receipt unknown, or later than wall time: wall time
		r = e.now
	}
	switch e.cfg.Clock.Check(t, r, e.now) {
	case clock.Future:
		e.stats.Future++
		return out
	case clock.BeyondRetention:
		e.stats.BeyondRetention++
		return out
	}
	id := e.seen.identity(ev.SensorID, ev.EventID)
	if !e.seen.claim(id) {
		e.stats.Duplicates++
		return out
	}
	e.tick(ev.SensorID, t, r)
	key := ev.Enrichment.DeviceKey
	if key == "" {
		key = ev.Raw.DeviceKey()
	}
	o := observed{Enriched: ev, t: t, facility: e.internString(ev.FacilityID)}
	d := e.devices[key]
	var horizon int64 = -1 // the longest horizon of the rules holding state from ev
	matched, late := false, false
	for i, ev := range e.evals {
		r := ev.rule()
		if !r.Where.Match(o.Enriched) {
			continue
		}
		matched = true
		if t < e.wm-e.horizon[i] {
			late = true
			continue
		}
		e.stats.Evaluations[i]++
		var s state
		n := 0
		if d != nil {
			if s = d.slots[i]; s != nil {
				n = s.size()
			}
		}
		s, f := ev.observe(s, &o)
		if s != nil && d == nil {
			d = &device{slots: make([]state, len(e.evals))}
			key = strings.Clone(key) // the event's strings may be views of its message
			e.devices[key] = d
			e.entries++
		}
		if d != nil {
			d.slots[i] = s
		}
		if s == nil {
			e.entries -= n
			continue
		}
		if f != nil {
			if a, ok := track(s.episode(), r, key, f); ok && emit {
				out = append(out, a)
			}
		}
		e.entries += s.size() - n
		if s.holds() {
			horizon = max(horizon, e.horizon[i])
		}
	}
	if horizon >= 0 {
		e.seen.keep(id, t, horizon)
	} else {
		// Only identities that left state are remembered: a second delivery of one that
		// left none is evaluated again and, as a rule, leaves none again (README).
		e.seen.release(id)
		if matched && late {
			e.stats.Late++
		}
	}
	if t > e.maxSeen {
		e.maxSeen = t
	}
	// Sweep once the watermark has moved on by evictEvery and, so that the sweep's cost
	// stays amortised below one device visit per event, once as many events as devices were
	// seen.
	e.sinceSweep++
	switch {
	case e.cfg.State.MaxEntries > 0 && e.entries > e.cfg.State.MaxEntries:
		e.shed()
	case e.wm-e.lastSweep >= evictEvery.Milliseconds() && e.sinceSweep >= len(e.devices):
		e.sweep()
	}
	return out
}

// tick folds a reading of sensor (event time t, received at r) into its clock and, every
// clockEvery events or as many as there are sensors, recomputes the watermark (amortised:
// below one sensor visit per event). Idle sensors are forgotten then.
func (e *Engine) tick(sensor string, t, r int64) {
	src := e.sources[sensor]
	if src == nil {
		src = &sourceClock{clock: t, arrival: r}
		e.sources[strings.Clone(sensor)] = src
	}
	src.clock, src.arrival = max(src.clock, t), max(src.arrival, r)
	e.sinceClock++
	if e.sinceClock < max(clockEvery, len(e.sources)) {
		return
	}
	e.sinceClock = 0
	e.readings = e.readings[:0]
	var arrival int64
	for _, s := range e.sources {
		arrival = max(arrival, s.arrival)
	}
	for id, s := range e.sources {
		if s.arrival < arrival-e.cfg.Clock.IdleTimeout.Milliseconds() {
			delete(e.sources, id) // silent: no longer holds the watermark back
			continue
		}
		e.readings = append(e.readings, clock.Reading{Clock: s.clock, Arrival: s.arrival})
	}
	e.wm, _, e.scratch = e.cfg.Clock.Watermark(e.readings, e.wm, e.scratch)
}

// sweep evicts state older than each rule's window behind the watermark, and the
// identities older than their horizon.
func (e *Engine) sweep() {
	e.lastSweep = e.wm
	e.sinceSweep = 0
	e.seen.evict(e.wm)
	for key, d := range e.devices {
		live := false
		for i, ev := range e.evals {
			s := d.slots[i]
			if s == nil {
				continue
			}
			n := s.size()
			before := e.wm - ev.rule().Window.Milliseconds()
			if ep := s.episode(); *ep != nil && (*ep).alert.LastEvidenceAt.UnixMilli() < before {
				*ep = nil
			}
			s = ev.evict(s, before)
			d.slots[i] = s
			e.entries -= n
			if s != nil {
				e.entries += s.size()
				live = true
			}
		}
		if !live {
			delete(e.devices, key)
			e.entries--
			e.stats.Evicted++
		}
	}
}

// internString shares one copy of low-cardinality strings (facility ids) across states.
// Strings kept in state are copies: an event's strings may point into its message or a
// decoder's buffer (a decoder may hand out views), which must not stay alive with the state.
func (e *Engine) internString(s string) string {
	if v, ok := e.intern[s]; ok {
		return v
	}
	s = strings.Clone(s)
	if len(e.intern) < 100_000 {
		e.intern[s] = s
	}
	return s
}

// episode is the open finding of one rule for one device: the alert as last built, the
// event time and count of its last emitted version, whether a version said a cap was
// reached, and the sightings of values the caps kept out since it opened.
type episode struct {
	alert    alert.Alert
	lastEmit int64
	emitted  uint32
	capped   bool
	refused  uint64
}

// track folds a finding into the device's episode: a finding within the rule's window of
// the open one extends it (same id), otherwise it opens a new one. It returns the alert
// version to emit, if any: the first version; a version that gained a facility, whose
// count is at least twice the last emitted one, or that first reached a state cap; and
// otherwise one at most every rule.UpdateEvery of event time. A finding thus has at most
// 1 + (facilities - 1) + log2(count / first count) + 1 versions, plus one per update_every
// of event time it stays open, however many events extend it (one device with 5,000 SIMs
// used to give 4,998 versions of one SIM_CHURN finding).
func track(epp **episode, r *rules.Rule, key string, f *finding) (alert.Alert, bool) {
	next := buildAlert(r, key, f)
	capped := len(f.capped) > 0
	if ep := *epp; ep != nil && f.at-ep.alert.LastEvidenceAt.UnixMilli() <= r.Window.Milliseconds() {
		facilities := len(ep.alert.Facilities)
		ep.alert.Extend(&next, r.MaxEvidence)
		ep.refused += f.refused
		if capped {
			ep.alert.Explanation += capNote(f, ep.refused)
		}
		grew := len(ep.alert.Facilities) > facilities || uint64(ep.alert.EvidenceCount) >= 2*uint64(ep.emitted) || capped && !ep.capped
		if !grew && f.at-ep.lastEmit < r.UpdateEvery.Milliseconds() {
			return alert.Alert{}, false
		}
		ep.alert.Version++
		ep.lastEmit, ep.emitted, ep.capped = f.at, ep.alert.EvidenceCount, ep.capped || capped
		return clone(ep.alert), true
	}
	next.ID = event.AlertID(r.ID, key, next.UpdatedAt)
	next.CreatedAt = next.UpdatedAt
	next.Version = 1
	if capped {
		next.Explanation += capNote(f, f.refused)
	}
	*epp = &episode{alert: next, lastEmit: f.at, emitted: next.EvidenceCount, capped: capped, refused: f.refused}
	return clone(next), true
}

// capNote tells, in an alert's explanation, that the count of fields at their cap is a
// lower bound.
func capNote(f *finding, refused uint64) string {
	note := fmt.Sprintf(" (state cap reached: at most %d distinct %s kept per device within the window, state.max_values", f.cap, strings.Join(f.capped, ", "))
	if refused > 0 {
		note += fmt.Sprintf("; %d sightings of further values not counted", refused)
	}
	return note + ")"
}

func clone(a alert.Alert) alert.Alert {
	a.Facilities = append([]string(nil), a.Facilities...)
	a.EvidenceIDs = append([]string(nil), a.EvidenceIDs...)
	return a
}

func ms(t int64) time.Time { return time.UnixMilli(t).UTC() }

func buildAlert(r *rules.Rule, key string, f *finding) alert.Alert {
	facilities := uniqueSorted(f.facilities)
	evidence := uniqueSorted(f.evidence)
	if len(evidence) > r.MaxEvidence {
		evidence = evidence[:r.MaxEvidence]
	}
	a := alert.Alert{
		Rule: r.ID, Severity: r.Severity, GroupKey: strings.Clone(key), Facilities: facilities,
		FirstEvidenceAt: ms(f.first), LastEvidenceAt: ms(f.last),
		WindowStart: ms(f.at - r.Window.Milliseconds()), WindowEnd: ms(f.at),
		EvidenceIDs: evidence, EvidenceCount: uint32(f.count),
		UpdatedAt: ms(f.at),
	}
	vals := map[string]string{
		"group_key": key, "facilities": strings.Join(facilities, ", "), "facility_count": strconv.Itoa(len(facilities)),
		"count": strconv.Itoa(f.count), "first": ms(f.first).Format(event.TimeLayout), "last": ms(f.last).Format(event.TimeLayout),
		"window": rules.FormatDuration(r.Window), "history": rules.FormatDuration(r.History),
	}
	for k, v := range f.values {
		vals[k] = v
	}
	a.Explanation = r.Explain(vals)
	return a
}

// insertSmallest adds id to ids (sorted, without repeats, at most k long) if it is among
// the k smallest: what uniqueSorted(all ids)[:k] keeps, without holding or sorting them all.
func insertSmallest(ids []string, id string, k int) []string {
	if id == "" || len(ids) >= k && id >= ids[len(ids)-1] {
		return ids
	}
	i, found := slices.BinarySearch(ids, id)
	if found {
		return ids
	}
	if len(ids) >= k {
		ids = ids[:len(ids)-1]
	}
	return slices.Insert(ids, i, id)
}

func uniqueSorted(s []string) []string {
	out := make([]string, 0, len(s))
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	w := 0
	for i, v := range out {
		if i == 0 || v != out[w-1] {
			out[w] = v
			w++
		}
	}
	return out[:w]
}
