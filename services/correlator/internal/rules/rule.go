// Package rules loads correlation rules from YAML (schemas/rules), validates them against
// their JSON Schema and against what the correlator can evaluate, and compiles them into
// Rule values the streaming and scheduled engines run. Rule types are Go code; rule
// instances are data.
package rules

import (
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// Type is a rule type: how a finding is computed.
type Type string

// Rule types.
const (
	// EventCount: at least Threshold events of one group within Window.
	EventCount Type = "event_count"
	// ValueCount: every Distinct field has at least its Min distinct values in one group
	// within Window.
	ValueCount Type = "value_count"
	// NewTerm: a group key unseen during History before Window, seen within Window (with
	// optional Distinct conditions).
	NewTerm Type = "new_term"
	// Sequence: an event matching First, then one matching Then, of the same group within
	// Window (with MinGap, Different and MinDistanceKm constraints).
	Sequence Type = "sequence"
	// BaselineThreshold: at least MinGroups groups whose count in one Bucket exceeds their
	// baseline's mean by Stddevs standard deviations.
	BaselineThreshold Type = "baseline_threshold"
)

// Mode says where a rule is evaluated.
type Mode string

// Evaluation modes.
const (
	// Streaming rules run per event in the correlator's memory, keyed by device.
	Streaming Mode = "streaming"
	// Scheduled rules run as ClickHouse queries at each step of event time.
	Scheduled Mode = "scheduled"
)

// Rule is one compiled rule.
type Rule struct {
	ID   string
	File string
	// Digest identifies the file's content (sha256, hex): a reload tells a changed rule
	// from the same one.
	Digest      string
	Title       string
	Description string
	Severity    string
	Type        Type
	Mode        Mode
	Source      *Source // scheduled rules
	Where       Filter
	GroupBy     []Field
	Window      time.Duration

	Threshold int             // event_count
	Distinct  []DistinctCount // value_count, new_term
	History   time.Duration   // new_term

	First, Then   Step // sequence
	Ordered       bool
	MinGap        time.Duration
	Different     []Field
	MinDistanceKm float64

	Bucket         time.Duration // baseline_threshold
	BaselineWindow time.Duration // baseline_threshold, and value_count with Growth
	SameHourOfDay  bool
	MinStddev      float64
	Stddevs        float64
	MinCount       int
	MinGroups      int

	// Growth makes a value_count rule count only what is new to its group: see Growth.
	Growth *Growth

	// NeedsHistory, when set, overrides the history the rule's claims need (Needs).
	NeedsHistory *time.Duration

	Every    time.Duration // scheduled
	Lateness time.Duration

	UpdateEvery time.Duration // streaming
	MaxEvidence int
	Explanation string
}

// DistinctCount asks for at least Min distinct values of Field.
type DistinctCount struct {
	Field Field
	Min   int
}

// Step is one event of a sequence.
type Step struct {
	Where        Filter
	NewTerm      *NewTermStep
	ActiveBefore *ActiveBefore
}

// ActiveBefore makes a first step stand for the groups active at the same place (Same
// fields) within Within before it, e.g. the devices seen in a zone before a search there.
type ActiveBefore struct {
	Within time.Duration
	Same   []Field
	Where  Filter
}

// NewTermStep restricts a sequence step to events bringing a value of Field new to the
// group over History, looked up in Source. With Min, a finding needs at least Min such
// values; with a Baseline, more than the group usually gets.
type NewTermStep struct {
	Field    Field
	History  time.Duration
	Source   *Source
	Min      int
	Baseline *NewTermBaseline
}

// NewTermBaseline is what is usual for a new_term step: the group's new values per rule
// window over Window before the step (each value counted at its first appearance within
// the step's history). A finding needs more than mean + Stddevs·√mean of them (a Poisson
// count's spread).
type NewTermBaseline struct {
	Window  time.Duration
	Stddevs float64
}

// Growth is a value_count rule's baseline (DOMAIN: "is this unusual?"): of the group's rows
// within the window, only those at facilities where the group was not seen during the
// BaselineWindow before the window count, and only at facilities covered for the rule's
// need; and there must be at least Factor times as many such new facilities as the Of key
// (the group itself, or a coarser key such as the TAC of a serial block) was seen at during
// the baseline. A model that is everywhere all the time, or grows at its usual pace, stays
// quiet; one that jumps to many new facilities does not.
type Growth struct {
	Factor float64
	Of     []Field
}

// MinNew is the least number of new facilities a finding has: the facility_id distinct
// condition, else 1.
func (r *Rule) MinNew() int {
	for _, d := range r.Distinct {
		if d.Field.Name == "facility_id" {
			return d.Min
		}
	}
	return 1
}

// Horizon is how long a streaming rule needs to remember an event: its window, or for a
// sequence its window plus nothing more (the first event must be at most Window old).
func (r *Rule) Horizon() time.Duration { return r.Window }

// GroupKey returns the group key of e: the value of the single group field, or
// field=value pairs joined by commas.
func (r *Rule) GroupKey(e *event.Enriched) string {
	if len(r.GroupBy) == 1 {
		return r.GroupBy[0].Get(e)
	}
	vals := make([]string, len(r.GroupBy))
	for i, f := range r.GroupBy {
		vals[i] = f.Get(e)
	}
	return JoinGroupKey(r.GroupBy, vals)
}

// JoinGroupKey formats the group key of values of fields.
func JoinGroupKey(fields []Field, values []string) string {
	if len(fields) == 1 {
		return values[0]
	}
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f.Name...)
		b = append(b, '=')
		b = append(b, values[i]...)
	}
	return string(b)
}
