package sched

import (
	"context"
	"fmt"
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
		}
		for i, g := range r.GroupBy {
			if i < len(res.values) {
				vals[g.Name] = res.values[i]
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
		next.ID = alert.ID(r.ID, res.key, end)
		next.CreatedAt = end
		next.Version = 1
		out = append(out, next)
	}
	return out, nil
}

func (s *Scheduler) aggregate(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, aggregateQuery(s.db, r, end))
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
	if r.Source.Name != "detections" && len(out) > 0 {
		if err := s.groupsEvidence(ctx, r, out, end.Add(-r.Window), end); err != nil {
			return nil, err
		}
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
	return out, rows.Err()
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
