// Package traffic generates realistic detector traffic for the facilities of a world:
// contraband phones used mostly at night, changing SIMs, moving with transferred inmates and
// found in cell searches; staff and visitor phones in the visiting rooms; drones over the
// perimeter; jammer alarms; and named scenarios planted on top (Scenarios). Everything is
// decided by the seed: the same options give the same events, in the same order.
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
	ScenarioPrisonBreak = "prison-break-2025"
	ScenarioTransfer    = "inmate-transfer"
	ScenarioDroneDrop   = "drone-drop"
	ScenarioClonedIMEI  = "cloned-imei"
	ScenarioBurst       = "national-burst"
)

// Scenarios lists every named scenario.
var Scenarios = []string{ScenarioPrisonBreak, ScenarioTransfer, ScenarioDroneDrop, ScenarioClonedIMEI, ScenarioBurst}

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
	// drones, searches); 1 is a realistic national volume (about 40,000 events a day).
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

// Truth is what the generator planted: for each scenario, what an analyst should find. It
// names clear identifiers: print it only to the simulator's own output, keep it in a test's
// memory, never write it where another service reads.
type Truth struct {
	Start, End time.Time
	Findings   []Finding
}

// Finding is one planted fact and the correlation rule that should report it.
type Finding struct {
	Scenario string
	// Rule is the correlation rule expected to fire (DOMAIN.md names).
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
	// At is when the finding becomes true (event time).
	At time.Time
	// Summary says it in plain words, without clear identifiers.
	Summary string
}

// Finding returns the first finding of a scenario.
func (t *Truth) Finding(scenario string) (Finding, bool) {
	for _, f := range t.Findings {
		if f.Scenario == scenario {
			return f, true
		}
	}
	return Finding{}, false
}
