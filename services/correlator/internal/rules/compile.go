package rules

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// compiler turns a ruleFile into a Rule, collecting problems that name the field and its
// place in the file.
type compiler struct {
	file string
	root *yaml.Node
	errs Problems
}

func (c *compiler) errorf(path string, format string, args ...any) {
	n := nodeAt(c.root, pathTokens(path))
	c.errs = append(c.errs, &Problem{File: c.file, Line: n.Line, Column: n.Column, Field: path, Message: fmt.Sprintf(format, args...)})
}

func (c *compiler) duration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		c.errorf(path, "%v", err)
	}
	return d
}

func (c *compiler) field(path, name string) Field {
	f, ok := Fields[name]
	if !ok {
		c.errorf(path, "unknown field %q (known: %s)", name, knownFields())
	}
	return f
}

func (c *compiler) compile(f *ruleFile) *Rule {
	r := &Rule{
		ID: f.Rule, File: c.file, Title: f.Title, Description: strings.TrimSpace(f.Description),
		Severity: f.Severity, Type: f.Type, Mode: f.Mode,
		Where:          c.filter("where", f.Where),
		Window:         c.duration("window", f.Window),
		Threshold:      f.Threshold,
		History:        c.duration("history", f.History),
		Ordered:        f.Ordered == nil || *f.Ordered,
		MinGap:         c.duration("min_gap", f.MinGap),
		MinDistanceKm:  f.MinDistanceKm,
		Bucket:         c.duration("bucket", f.Bucket),
		BaselineWindow: c.duration("baseline.window", f.Baseline.Window),
		SameHourOfDay:  f.Baseline.SameHourOfDay,
		MinStddev:      f.Baseline.MinStddev,
		Stddevs:        f.Stddevs,
		MinCount:       max(f.MinCount, 1),
		MinGroups:      f.MinGroups,
		Every:          c.duration("schedule.every", f.Schedule.Every),
		Lateness:       c.duration("schedule.lateness", f.Schedule.Lateness),
		UpdateEvery:    c.duration("update_every", f.UpdateEvery),
		MaxEvidence:    f.MaxEvidence,
		Explanation:    f.Explanation,
	}
	if r.MaxEvidence == 0 {
		r.MaxEvidence = DefaultMaxEvidence
	}
	if r.Window <= 0 {
		c.errorf("window", "must be positive")
	}
	for i, g := range f.GroupBy {
		r.GroupBy = append(r.GroupBy, c.field(fmt.Sprintf("group_by[%d]", i), g))
	}
	for i, d := range f.Distinct {
		r.Distinct = append(r.Distinct, DistinctCount{Field: c.field(fmt.Sprintf("distinct[%d].field", i), d.Field), Min: d.Min})
	}
	for i, d := range f.Different {
		r.Different = append(r.Different, c.field(fmt.Sprintf("different[%d]", i), d))
	}
	if f.First != nil {
		r.First = c.step("first", f.First)
	}
	if f.Then != nil {
		r.Then = c.step("then", f.Then)
	}
	if f.Source != "" {
		r.Source = Sources[f.Source]
	}
	if f.Baseline.New != "" {
		r.Growth = &Growth{Factor: 0}
		if f.Baseline.Growth != nil {
			r.Growth.Factor = *f.Baseline.Growth
		}
		c.field("baseline.new", f.Baseline.New)
		for i, g := range f.Baseline.GrowthOf {
			r.Growth.Of = append(r.Growth.Of, c.field(fmt.Sprintf("baseline.growth_of[%d]", i), g))
		}
		if len(r.Growth.Of) == 0 {
			r.Growth.Of = r.GroupBy
		}
	} else if f.Baseline.Growth != nil || len(f.Baseline.GrowthOf) > 0 {
		c.errorf("baseline", "growth and growth_of need new: facility_id (what is new to the group)")
	}
	if f.NeedsHistory != nil {
		d := c.duration("needs_history", *f.NeedsHistory)
		r.NeedsHistory = &d
	}
	c.checkType(r)
	c.checkMode(r)
	return r
}

func (c *compiler) step(path string, s *stepYAML) Step {
	st := Step{Where: c.filter(path+".where", s.Where)}
	if ab := s.ActiveBefore; ab != nil {
		st.ActiveBefore = &ActiveBefore{Within: c.duration(path+".active_before.within", ab.Within), Where: c.filter(path+".active_before.where", ab.Where)}
		for i, f := range ab.Same {
			st.ActiveBefore.Same = append(st.ActiveBefore.Same, c.field(fmt.Sprintf("%s.active_before.same[%d]", path, i), f))
		}
	}
	if s.NewTerm != nil {
		src := Sources["detections"]
		if s.NewTerm.Source != "" {
			src = Sources[s.NewTerm.Source]
		}
		st.NewTerm = &NewTermStep{
			Field:   c.field(path+".new_term.field", s.NewTerm.Field),
			History: c.duration(path+".new_term.history", s.NewTerm.History),
			Source:  src,
			Min:     max(s.NewTerm.Min, 1),
		}
		if b := s.NewTerm.Baseline; b != nil {
			st.NewTerm.Baseline = &NewTermBaseline{Window: c.duration(path+".new_term.baseline.window", b.Window), Stddevs: b.Stddevs}
		}
	}
	return st
}

// checkType enforces what the schema cannot say about one rule type.
func (c *compiler) checkType(r *Rule) {
	switch r.Type {
	case Sequence:
		if r.MinGap >= r.Window {
			c.errorf("min_gap", "%s must be shorter than window %s", FormatDuration(r.MinGap), FormatDuration(r.Window))
		}
		if r.MinDistanceKm > 0 && !containsField(r.Different, "facility_id") {
			c.errorf("min_distance_km", "needs different: [facility_id] (a distance is between two facilities)")
		}
	case BaselineThreshold:
		if r.BaselineWindow <= r.Bucket {
			c.errorf("baseline.window", "must be longer than bucket %s", FormatDuration(r.Bucket))
		}
		if r.SameHourOfDay && (r.Bucket <= 0 || r.Bucket > time.Hour || time.Hour%r.Bucket != 0) {
			c.errorf("bucket", "must divide one hour when baseline.same_hour_of_day is set")
		}
	}
	if r.First.ActiveBefore != nil && len(r.Different) > 0 {
		c.errorf("different", "cannot be combined with first.active_before")
	}
	if r.Then.ActiveBefore != nil {
		c.errorf("then.active_before", "applies to the first step only")
	}
	if r.Type != Sequence && (r.First.Where != nil || r.Then.Where != nil || r.MinGap != 0 || len(r.Different) > 0) {
		c.errorf("type", "first, then, min_gap and different apply to sequence rules only")
	}
	if r.Type != ValueCount && r.Type != NewTerm && len(r.Distinct) > 0 {
		c.errorf("distinct", "applies to value_count and new_term rules only")
	}
	c.checkBaseline(r)
	if r.First.NewTerm != nil {
		c.errorf("first.new_term", "only the then step of a sequence can ask for a new value")
	}
	if nt := r.Then.NewTerm; nt != nil && nt.Baseline != nil {
		if nt.Baseline.Window <= 0 || nt.Baseline.Window >= nt.History {
			c.errorf("then.new_term.baseline.window", "must be positive and shorter than history %s (each usual new value needs history before it)", FormatDuration(nt.History))
		}
		if nt.Baseline.Window%r.Window != 0 {
			c.errorf("then.new_term.baseline.window", "must be a multiple of window %s (the usual count is per window)", FormatDuration(r.Window))
		}
	}
	if r.NeedsHistory != nil && *r.NeedsHistory < 0 {
		c.errorf("needs_history", "must not be negative")
	}
}

// checkBaseline enforces which baseline keys each type reads: baseline_threshold compares
// bucket counts (same_hour_of_day, min_stddev), value_count compares new facilities with
// the group's footprint (new, growth, growth_of).
func (c *compiler) checkBaseline(r *Rule) {
	switch {
	case r.Growth != nil && r.Type != ValueCount:
		c.errorf("baseline.new", "applies to value_count rules only (baseline_threshold compares counts with their baseline)")
	case r.Type == ValueCount && r.BaselineWindow > 0 && r.Growth == nil:
		c.errorf("baseline", "a value_count baseline needs new: facility_id (what is new to the group)")
	case r.Type != BaselineThreshold && (r.SameHourOfDay || r.MinStddev != 0):
		c.errorf("baseline", "same_hour_of_day and min_stddev apply to baseline_threshold rules only")
	}
	if r.Growth == nil {
		return
	}
	if r.BaselineWindow <= 0 {
		c.errorf("baseline.window", "must be positive")
	}
	if r.Growth.Factor < 0 {
		c.errorf("baseline.growth", "must not be negative")
	}
	if containsField(r.GroupBy, "facility_id") {
		c.errorf("group_by", "a group of one facility has no new facilities: leave facility_id out of group_by")
	}
	for i, g := range r.Growth.Of {
		if !containsField(r.GroupBy, g.Name) && g.Name != "" {
			c.errorf(fmt.Sprintf("baseline.growth_of[%d]", i), "%s is not in group_by: the footprint is of the group or of a coarser key", g.Name)
		}
	}
}

// checkMode enforces what each evaluation mode can compute.
func (c *compiler) checkMode(r *Rule) {
	switch r.Mode {
	case Streaming:
		c.checkStreaming(r)
	case Scheduled:
		if r.Source != nil {
			c.checkScheduled(r)
		}
	}
}

func (c *compiler) checkStreaming(r *Rule) {
	if len(r.GroupBy) != 1 || r.GroupBy[0].Name != "device_key" {
		c.errorf("group_by", "streaming rules group by [device_key], the key of detections.enriched.v1, so that one correlator instance sees a group's whole history; evaluate other groupings in scheduled mode")
	}
	switch r.Type {
	case EventCount, ValueCount, Sequence:
	default:
		c.errorf("type", "%s rules need national history: use mode scheduled", r.Type)
	}
	if r.First.NewTerm != nil || r.Then.NewTerm != nil {
		c.errorf("then.new_term", "new_term steps need history in ClickHouse: use mode scheduled")
	}
	if r.First.ActiveBefore != nil {
		c.errorf("first.active_before", "active_before needs other devices' history: use mode scheduled")
	}
	if r.Growth != nil {
		c.errorf("baseline", "a baseline needs the history in ClickHouse: use mode scheduled")
	}
	if r.NeedsHistory != nil {
		c.errorf("needs_history", "applies to scheduled rules (a streaming rule makes no claim about history)")
	}
	if r.UpdateEvery == 0 {
		r.UpdateEvery = r.Window
	}
}

func (c *compiler) checkScheduled(r *Rule) {
	if r.Every <= 0 {
		c.errorf("schedule.every", "must be positive")
	}
	used := append(append([]string{}, r.Where.Fields()...), r.First.Where.Fields()...)
	used = append(used, r.Then.Where.Fields()...)
	for _, g := range r.GroupBy {
		used = append(used, g.Name)
	}
	for i, d := range r.Distinct {
		_, col := r.Source.Columns[d.Field.Name]
		if _, agg := r.Source.Distinct[d.Field.Name]; !col && !agg {
			c.errorf(fmt.Sprintf("distinct[%d].field", i), "table %s cannot count distinct %s", r.Source.Name, d.Field.Name)
		}
	}
	for _, name := range used {
		if _, ok := r.Source.Columns[name]; !ok && name != "" {
			c.errorf("source", "table %s has no field %s: read detections or a rollup that carries it", r.Source.Name, name)
		}
	}
	if r.Source.DayGranularity {
		for _, d := range []struct {
			path string
			v    time.Duration
		}{{"window", r.Window}, {"history", r.History}, {"schedule.every", r.Every}, {"baseline.window", r.BaselineWindow}} {
			if d.v%Day != 0 {
				c.errorf(d.path, "%s reads %s, a daily rollup: use whole days", r.ID, r.Source.Name)
			}
		}
	}
	if r.Source.Name == "detections_per_minute" && (r.Every%time.Minute != 0 || r.Bucket%time.Minute != 0) {
		c.errorf("schedule.every", "%s reads a per-minute rollup: use whole minutes", r.ID)
	}
	if r.Type == Sequence {
		if r.Source.Name != "detections" {
			c.errorf("source", "scheduled sequences read detections")
		}
		if nt := r.Then.NewTerm; nt != nil && nt.Source != nil && nt.Source.Name == "device_presence_per_day" &&
			(nt.Field.Name != "device_id" || len(r.GroupBy) != 1 || r.GroupBy[0].Name != "facility_id") {
			c.errorf("then.new_term.source", "device_presence_per_day answers new device_id per facility_id only")
		}
		if nt := r.Then.NewTerm; nt != nil && nt.Baseline != nil && (nt.Source == nil || nt.Source.Name != "device_presence_per_day") {
			c.errorf("then.new_term.baseline", "a new_term baseline reads device_presence_per_day (source: device_presence_per_day)")
		}
	}
	if r.Type == BaselineThreshold && r.Every != r.Bucket {
		c.errorf("schedule.every", "must equal bucket (each bucket is evaluated once)")
	}
	c.checkCoverage(r)
}

// checkCoverage: a rule whose claims need history counts only the facilities that history
// covers, so it reads a table with facility_id; so does one that counts new facilities. And
// the history it reads must be within what its tables keep.
func (c *compiler) checkCoverage(r *Rule) {
	if need, why := r.derivedNeed(); need > 0 {
		src, path := r.Source, "source"
		if nt := r.Then.NewTerm; nt != nil {
			src, path = nt.Source, "then.new_term.history"
		}
		if src.Retention > 0 && need > src.Retention {
			c.errorf(path, "%s reads %s of %s (%s), which keeps %s: what its TTL deleted would look unseen",
				r.ID, FormatDuration(need), src.Name, why, FormatDuration(src.Retention))
		}
	}
	src := r.Source
	if r.Type == Sequence {
		src = Sources["detections"]
	}
	if _, ok := src.Columns["facility_id"]; ok {
		return
	}
	if r.Growth != nil {
		c.errorf("baseline.new", "table %s has no facility_id, so it cannot tell new facilities: read a per-facility table", src.Name)
		return
	}
	if need, why := r.Needs(); need > 0 {
		c.errorf("source", "%s needs %s of history (%s), and table %s has no facility_id to count only the facilities that history covers: read a per-facility table, or set needs_history: 0s",
			r.ID, FormatDuration(need), why, src.Name)
	}
}

func containsField(fs []Field, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}
