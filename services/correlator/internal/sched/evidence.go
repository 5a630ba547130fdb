package sched

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Evidence lookups for rollup findings are batched: at most evidenceGroups findings per
// query and, when listing each finding's evidence days, at most evidenceTuples (finding,
// day) pairs (else the batch's overall days), which keeps the query text far below
// ClickHouse's max_query_size (256 KiB).
const (
	evidenceGroups = 500
	evidenceTuples = 2000
)

// groupsEvidence looks up the event ids in detections of findings computed on a rollup, in
// one query per batch of findings (one query per finding would scan the window once per
// finding).
func (s *Scheduler) groupsEvidence(ctx context.Context, r *rules.Rule, out []result, from, to time.Time) error {
	for len(out) > 0 {
		n := min(len(out), s.evidenceGroups)
		if err := s.evidenceBatch(ctx, r, out[:n], from, to); err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

func (s *Scheduler) evidenceBatch(ctx context.Context, r *rules.Rule, out []result, from, to time.Time) error {
	groups := make([]evidenceGroup, len(out))
	byKey := make(map[string]*result, len(out))
	var facilities []string
	seen := map[string]bool{}
	// The rollup's first_seen bounds a group's earliest event from below, and the end of
	// its last evidence day (daily rollups) from above: read only that span.
	earliest, latest := to, from
	tuples := 0
	for i := range out {
		res := &out[i]
		groups[i] = evidenceGroup{values: res.values, days: res.evidenceDays}
		if r.Growth != nil {
			groups[i].facilities = res.facilities
		}
		byKey[res.key] = res
		for _, f := range res.facilities {
			if !seen[f] {
				seen[f] = true
				facilities = append(facilities, f)
			}
		}
		earliest = minTime(earliest, res.first)
		if n := len(res.evidenceDays); n > 0 {
			latest = maxTime(latest, res.evidenceDays[n-1].UTC().Add(rules.Day))
		} else {
			latest = to
		}
		tuples += max(len(groups[i].facilities), 1) * len(res.evidenceDays)
	}
	byDay := r.Source.CountByDay != "" && tuples <= s.evidenceTuples
	if r.Source.Facilities == "" {
		facilities = nil
	}
	if earliest.After(from) {
		from = earliest
	}
	if latest.Before(to) {
		to = latest
	}
	if !from.Before(to) {
		return nil
	}
	sort.Strings(facilities)
	rows, err := s.conn.Query(ctx, groupsEvidenceQuery(s.db, r, groups, byDay, facilities, from, to))
	if err != nil {
		return fmt.Errorf("evidence of %s: %w", r.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]string, len(r.GroupBy))
		dest := make([]any, 0, len(vals)+1)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var ids []string
		dest = append(dest, &ids)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan evidence of %s: %w", r.ID, err)
		}
		if res, ok := byKey[rules.JoinGroupKey(r.GroupBy, vals)]; ok {
			res.evidence = ids
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read evidence of %s: %w", r.ID, err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// evidence looks up event ids in detections for a finding computed on a rollup.
func (s *Scheduler) evidence(ctx context.Context, r *rules.Rule, res *result, from, to time.Time) error {
	conds := make([]string, len(r.GroupBy))
	for i, g := range r.GroupBy {
		conds[i] = rules.Fields[g.Name].Column + " = " + rules.Quote(res.values[i])
	}
	if r.Type == rules.BaselineThreshold {
		conds = []string{"facility_id IN (" + quoteAll(res.facilities) + ")"}
	}
	if err := s.conn.QueryRow(ctx, evidenceQuery(s.db, r, r.Where, conds, from, to)).Scan(&res.evidence); err != nil {
		return fmt.Errorf("evidence of %s %s: %w", r.ID, res.key, err)
	}
	return nil
}

func quoteAll(vs []string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = rules.Quote(v)
	}
	return strings.Join(out, ", ")
}
