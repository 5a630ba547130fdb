package sched

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// result is one group's finding from a query.
type result struct {
	key         string
	values      []string // group values
	n           uint64
	distinct    []uint64
	first, last time.Time
	facilities  []string
	evidence    []string
	// evidenceDays are the days holding the group's earliest events (daily rollups).
	evidenceDays []time.Time
	// baseline is a growth rule's footprint: the facilities its growth_of key was seen
	// at during the baseline; usual is a new_term baseline's mean per window.
	baseline uint64
	usual    float64
}

// Evaluate computes the findings of r for the step ending at end and turns them into the
// alert versions to emit (new findings, or extensions of findings still open).
func (s *Scheduler) Evaluate(ctx context.Context, r *rules.Rule, end time.Time) ([]alert.Alert, error) {
	var results []result
	var err error
	windowStart := end.Add(-r.Window)
	switch r.Type {
	case rules.ValueCount, rules.NewTerm, rules.EventCount:
		results, err = s.aggregate(ctx, r, end)
	case rules.Sequence:
		windowStart = end.Add(-r.Every - r.Window)
		results, err = s.sequence(ctx, r, end)
	case rules.BaselineThreshold:
		results, err = s.baseline(ctx, r, end)
	default:
		return nil, fmt.Errorf("rule type %s has no scheduled evaluation", r.Type)
	}
	if err != nil {
		return nil, err
	}
	if len(results) == 0 {
		return nil, nil
	}
	open, err := s.openAlerts(ctx, r, end.Add(-r.Window))
	if err != nil {
		return nil, err
	}
	var out []alert.Alert
	for _, res := range results {
		vals := map[string]string{
			"group_key": res.key, "facilities": strings.Join(res.facilities, ", "), "facility_count": strconv.Itoa(len(res.facilities)),
			"count": strconv.FormatUint(res.n, 10), "first": res.first.Format(event.TimeLayout), "last": res.last.Format(event.TimeLayout),
			"window": rules.FormatDuration(r.Window), "history": rules.FormatDuration(r.History),
			"baseline": rules.FormatDuration(r.BaselineWindow), "baseline_count": strconv.FormatUint(res.baseline, 10),
		}
		if nt := r.Then.NewTerm; nt != nil && nt.Baseline != nil {
			vals["usual"] = strconv.FormatFloat(res.usual, 'f', 1, 64) + " per " + rules.FormatDuration(r.Window)
		}
		for i, g := range r.GroupBy {
			if i < len(res.values) {
				vals[g.Name] = res.values[i]
				if g.Name == "tac" {
					vals["model"] = s.modelName(res.values[i])
				}
			}
		}
		for i, d := range r.Distinct {
			vals["distinct."+d.Field.Name] = strconv.FormatUint(res.distinct[i], 10)
		}
		count := res.n
		if len(res.distinct) > 0 {
			count = res.distinct[0]
		}
		next := alert.Alert{
			Rule: r.ID, Severity: r.Severity, GroupKey: res.key, Facilities: res.facilities,
			FirstEvidenceAt: res.first, LastEvidenceAt: res.last, WindowStart: windowStart, WindowEnd: end,
			EvidenceIDs: res.evidence, EvidenceCount: uint32(count), Explanation: r.Explain(vals), UpdatedAt: end,
		}
		if len(next.EvidenceIDs) > r.MaxEvidence {
			next.EvidenceIDs = next.EvidenceIDs[:r.MaxEvidence]
		}
		if prev, ok := open[res.key]; ok {
			if !prev.WindowEnd.Before(end) {
				continue // this step was already evaluated (a crash before its watermark was saved)
			}
			lastEmitted := prev.UpdatedAt
			grew := prev.Extend(&next, r.MaxEvidence)
			if !grew && end.Sub(lastEmitted) < max(r.UpdateEvery, r.Window) && r.Type != rules.BaselineThreshold {
				continue
			}
			prev.UpdatedAt = end
			prev.Version++
			out = append(out, prev)
			continue
		}
		next.ID = event.AlertID(r.ID, res.key, end)
		next.CreatedAt = end
		next.Version = 1
		out = append(out, next)
	}
	return out, nil
}

func (s *Scheduler) aggregate(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	var out []result
	var err error
	if r.Growth != nil {
		out, err = s.growth(ctx, r, end)
	} else {
		out, err = s.aggregateRows(ctx, r, aggregateQuery(s.db, r, end, ""))
	}
	if err != nil {
		return nil, err
	}
	if r.Source.Name != "detections" && len(out) > 0 {
		if err := s.groupsEvidence(ctx, r, out, end.Add(-r.Window), end); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// aggregateRows runs an aggregate query (aggregateQuery) and reads its groups.
func (s *Scheduler) aggregateRows(ctx context.Context, r *rules.Rule, q string) ([]result, error) {
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var out []result
	for rows.Next() {
		res := result{values: make([]string, len(r.GroupBy)), distinct: make([]uint64, len(r.Distinct))}
		dest := make([]any, 0, len(r.GroupBy)+len(r.Distinct)+5)
		for i := range res.values {
			dest = append(dest, &res.values[i])
		}
		for i := range res.distinct {
			dest = append(dest, &res.distinct[i])
		}
		dest = append(dest, &res.n, &res.first, &res.last, &res.facilities, &res.evidence, &res.evidenceDays)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		res.key = rules.JoinGroupKey(r.GroupBy, res.values)
		res.first, res.last = res.first.UTC(), res.last.UTC()
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	return out, nil
}

func (s *Scheduler) sequence(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, sequenceQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var out []result
	for rows.Next() {
		var res result
		var key string
		if err := rows.Scan(&key, &res.n, &res.first, &res.last, &res.facilities, &res.evidence); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		res.key, res.values = key, []string{key}
		res.first, res.last = res.first.UTC(), res.last.UTC()
		out = append(out, res)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	if nt := r.Then.NewTerm; nt != nil && nt.Baseline != nil && len(out) > 0 {
		return s.aboveUsual(ctx, r, end, out)
	}
	return out, nil
}

// aboveUsual keeps the findings of a sequence whose new values are more than their group
// usually gets: n > mean + stddevs·√mean, mean its new values per window over the
// baseline (usualQuery; a Poisson count's spread).
func (s *Scheduler) aboveUsual(ctx context.Context, r *rules.Rule, end time.Time, found []result) ([]result, error) {
	groups := make([]string, len(found))
	for i, res := range found {
		groups[i] = res.key
	}
	rows, err := s.conn.Query(ctx, usualQuery(s.db, r, end, groups))
	if err != nil {
		return nil, fmt.Errorf("query the baseline of %s: %w", r.ID, err)
	}
	defer rows.Close()
	counts := map[string]uint64{}
	for rows.Next() {
		var g string
		var c uint64
		if err := rows.Scan(&g, &c); err != nil {
			return nil, fmt.Errorf("scan the baseline of %s: %w", r.ID, err)
		}
		counts[g] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the baseline of %s: %w", r.ID, err)
	}
	b := r.Then.NewTerm.Baseline
	out := found[:0]
	for _, res := range found {
		res.usual = float64(counts[res.key]) * float64(r.Window) / float64(b.Window)
		if float64(res.n) > res.usual+b.Stddevs*math.Sqrt(res.usual) {
			out = append(out, res)
		}
	}
	return out, nil
}

func (s *Scheduler) baseline(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, baselineQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var groups []string
	var total uint64
	for rows.Next() {
		var g string
		var n uint64
		var mean, sd float64
		if err := rows.Scan(&g, &n, &mean, &sd); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		groups = append(groups, g)
		total += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	if len(groups) < r.MinGroups {
		return nil, nil
	}
	res := result{key: NationalKey, values: []string{NationalKey}, n: uint64(len(groups)), first: end.Add(-r.Bucket), last: end}
	if r.GroupBy[0].Name == "facility_id" {
		res.facilities = groups
	}
	if err := s.evidence(ctx, r, &res, end.Add(-r.Bucket), end); err != nil {
		return nil, err
	}
	_ = total
	return []result{res}, nil
}
