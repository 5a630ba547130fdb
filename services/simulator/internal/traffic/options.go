// Package traffic generates realistic detector traffic for the facilities of a world, and
// named scenarios planted on top of it (Scenarios).
//
// The background is ordinary activity that no correlation rule should report: mass-market
// phones of hundreds of models (identity.Catalogue) hidden in the cells and used mostly at
// night, staff phones during their shifts, regular visitors on their visiting day, drones
// that fly over without dropping anything, searches that find phones where phones are,
// seized phones that never come back, jammer alarms. Every phone stays at its facility with
// its own SIM. What a rule is meant to report — a model spreading, a shipment, a phone that
// moves or changes SIMs, a drop, a burst, a resurrection, a missed search — happens only in
// the planted scenarios, each with a near miss (a decoy) just under its rule's threshold.
// Everything is decided by the seed: the same options give the same events, in the same
// order.
//
// The events hold clear, synthetic identifiers (IMEI, IMSI, dialled number) as a detector
// would send them. They are meant for the ingest API only; Truth, which names the planted
// identifiers, is for the caller's own output and memory, never for files other services read.
package traffic

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioPrisonBreak  = "prison-break-2025"
	ScenarioTransfer     = "inmate-transfer"
	ScenarioDroneDrop    = "drone-drop"
	ScenarioClonedIMEI   = "cloned-imei"
	ScenarioBurst        = "national-burst"
	ScenarioSIMChurn     = "sim-churn"
	ScenarioSharedSIM    = "shared-sim"
	ScenarioResurrection = "seized-resurrection"
	ScenarioSearchMiss   = "search-miss"
)

// Scenarios lists every named scenario, in the order they are planned.
var Scenarios = []string{ScenarioDroneDrop, ScenarioPrisonBreak, ScenarioTransfer, ScenarioClonedIMEI, ScenarioBurst,
	ScenarioSIMChurn, ScenarioSharedSIM, ScenarioResurrection, ScenarioSearchMiss}

// Rule names (schemas/rules).
const (
	RuleTACSpread          = "TAC_SPREAD"
	RuleBatchRange         = "BATCH_RANGE"
	RuleNewTACNational     = "NEW_TAC_NATIONAL"
	RuleDeviceMultiSite    = "DEVICE_MULTI_SITE"
	RuleImpossibleTravel   = "IMPOSSIBLE_TRAVEL"
	RuleSIMChurn           = "SIM_CHURN"
	RuleSIMChurnSharedSIM  = "SIM_CHURN_SHARED_SIM"
	RuleDroneThenNewDevice = "DRONE_THEN_NEW_DEVICE"
	RuleSyncBurst          = "SYNC_BURST"
	RuleSeizedResurrection = "SEIZED_RESURRECTION"
	RuleSearchMiss         = "SEARCH_MISS"
)

// Rules lists the correlation rules the scenarios plant for (and near misses of).
var Rules = []string{RuleTACSpread, RuleBatchRange, RuleNewTACNational, RuleDeviceMultiSite, RuleImpossibleTravel,
	RuleSIMChurn, RuleSIMChurnSharedSIM, RuleDroneThenNewDevice, RuleSyncBurst, RuleSeizedResurrection, RuleSearchMiss}

// Promise is what a correlation rule promises: the history the data must cover before it
// claims anything (it stays quiet while it warms up), and the longest it takes, in event
// time, to report a fact once the fact is true (a streaming rule reports on the event that
// makes it true; a scheduled one at the end of the step that holds it, after its lateness).
type Promise struct {
	History, Delay time.Duration
}

// Promises are the shipped rules' promises (schemas/rules): the history a facility's data
// must cover, as the correlator derives it (new_term: window + history; value_count with a
// baseline: window + baseline window; baseline_threshold: its baseline; a sequence with a
// new_term step: its history; streaming rules: none), and the schedule's step plus lateness.
// The scenarios plant their facts after the history is there when the period allows it.
var Promises = map[string]Promise{
	RuleTACSpread:          {28 * day, day + time.Hour},
	RuleBatchRange:         {42 * day, day + time.Hour},
	RuleNewTACNational:     {187 * day, day + time.Hour},
	RuleDeviceMultiSite:    {0, 0},
	RuleImpossibleTravel:   {0, 0},
	RuleSIMChurn:           {0, 0},
	RuleSIMChurnSharedSIM:  {0, time.Hour + 10*time.Minute},
	RuleDroneThenNewDevice: {30 * day, 15 * time.Minute},
	RuleSyncBurst:          {28 * day, 15 * time.Minute},
	RuleSeizedResurrection: {0, 0},
	RuleSearchMiss:         {0, time.Hour + 10*time.Minute},
}

// digitRuns are digits possibly separated as in a phone number, which ingest redacts.
var digitRuns = regexp.MustCompile(`[0-9][0-9 .()-]*`)

func phoneLike(s string) bool {
	for _, run := range digitRuns.FindAllString(s, -1) {
		n := 0
		for _, c := range run {
			if c >= '0' && c <= '9' {
				n++
			}
		}
		if n >= 6 {
			return true
		}
	}
	return false
}

// Options decide what is generated.
type Options struct {
	// Seed decides every random choice.
	Seed uint64
	// Start is the event time of the first day (truncated to midnight UTC).
	Start time.Time
	// Days is the length of the simulated period.
	Days int
	// Scale multiplies the background population (contraband, staff and visitor phones,
	// searches); 1 is a realistic national volume (about 50,000 events a day).
	Scale float64
	// Scenarios are the planted scenarios (names from Scenarios).
	Scenarios []string
	// SupplierPhones is the number of phones of the prison-break-2025 supplier (about 5,000
	// in the real case).
	SupplierPhones int
	// SupplierFacilities is the number of facilities they reach (66 in the real case).
	SupplierFacilities int
	// InvalidRatio is the share of events a faulty sensor sends out of the contract
	// (an RSSI below -200 dBm), which ingest must reject.
	InvalidRatio float64
	// RunID prefixes every event_id, so that two runs of the same seed are not duplicates.
	RunID string
}

// DefaultOptions is the 2025-case demo: six weeks, every scenario, a tenth of the national
// background volume.
func DefaultOptions() Options {
	return Options{
		Seed:               1,
		Start:              time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -42),
		Days:               42,
		Scale:              0.1,
		Scenarios:          slices.Clone(Scenarios),
		SupplierPhones:     5000,
		SupplierFacilities: 66,
		RunID:              "sim",
	}
}

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Days < 7:
		return errors.New("days: must be at least 7 (scenarios unfold over a week or more)")
	case o.Scale < 0:
		return errors.New("scale: must not be negative")
	case o.SupplierPhones < 0:
		return errors.New("supplier_phones: must not be negative")
	case o.SupplierFacilities < 5:
		return errors.New("supplier_facilities: must be at least 5")
	case o.InvalidRatio < 0 || o.InvalidRatio > 0.5:
		return errors.New("invalid_ratio: must be between 0 and 0.5")
	case o.RunID == "" || len(o.RunID) > 24 || strings.ContainsFunc(o.RunID, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}):
		return errors.New("run_id: must be 1 to 24 letters, digits, '-' or '_'")
	case phoneLike(o.RunID):
		// Ingest redacts such runs in dead-letter records: the run's would not be found.
		return errors.New("run_id: must not hold six digits in a row, even separated by '-'")
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return fmt.Errorf("scenarios: unknown scenario %q (one of %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	return nil
}

// Truth is what the generator planted: for each scenario, the facts an analyst should find
// (Findings, the plants) and the near misses that must stay quiet (Decoys). It names clear
// identifiers (IMEIs): print it only to the simulator's own output, keep it in a test's
// memory, never write it where another service reads.
type Truth struct {
	Start, End time.Time
	Findings   []Finding
	Decoys     []Finding
}

// Finding is one planted fact and the correlation rule that should report it or, for a
// decoy, a pattern just under the rule's threshold that the rule must not report.
type Finding struct {
	Scenario string
	// Rule is the correlation rule expected to fire (or, for a decoy, to stay quiet).
	Rule string
	// Facilities involved, in order of first involvement.
	Facilities []string
	// TACs and SerialPrefixes of the planted phones (not personal: models and blocks).
	TACs           []string
	SerialPrefixes []string
	// IMEIs are the planted clear IMEIs the finding is about (a sample for large scenarios).
	IMEIs []string
	// Devices is the number of planted devices.
	Devices int
	// Since is the event time of the pattern's first event.
	Since time.Time
	// At is when the fact becomes true (event time); for a decoy, when the near miss is
	// complete.
	At time.Time
	// Delay is the longest the rule promises to take to report the fact after At (event
	// time), History the history it needs before At (Promises).
	Delay, History time.Duration
	// Summary says it in plain words, without clear identifiers.
	Summary string
}

// Covered reports whether the period holds the history the finding's rule needs before At:
// a rule warming up does not report, and should not.
func (f Finding) Covered(start time.Time) bool { return !f.At.Before(start.Add(f.History)) }

// Finding returns the first finding of a scenario.
func (t *Truth) Finding(scenario string) (Finding, bool) {
	for _, f := range t.Findings {
		if f.Scenario == scenario {
			return f, true
		}
	}
	return Finding{}, false
}

// Expected returns the findings whose rule has the history it needs: those every rule must
// report (the others are planted before their rule can speak).
func (t *Truth) Expected() []Finding {
	var out []Finding
	for _, f := range t.Findings {
		if f.Covered(t.Start) {
			out = append(out, f)
		}
	}
	return out
}

// plant records a fact a rule must report; decoy one it must not.
func (g *Generator) plant(f Finding) {
	p := Promises[f.Rule]
	f.Delay, f.History = p.Delay, p.History
	g.truth.Findings = append(g.truth.Findings, f)
}

func (g *Generator) decoy(f Finding) {
	p := Promises[f.Rule]
	f.Delay, f.History = p.Delay, p.History
	g.truth.Decoys = append(g.truth.Decoys, f)
}
