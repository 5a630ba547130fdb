package sched

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// A pre-check is a necessary condition for a step of a rule to hold a finding, computed for
// a whole catch-up range in one query: the "slots" (multiples of the rule's every, by
// their index since the Unix epoch) holding the rows a finding needs. A step ending at E
// can hold a finding only if a slot s has (s+1)·every <= E <= (s+1)·every + reach. Every
// other step is skipped: its evaluation would find nothing, and so emit nothing.
//
//   - sequence: a finding needs a first-step event within window before the step's then
//     events (drones, searches); when the first step stands for the groups active at the
//     same place before it (active_before: SEARCH_MISS), a then event in the step of a
//     group active before such an event, within window after it (searches that find
//     nothing are common, in empty zones; one where a phone had been, then the phone again,
//     is rare); when the then step is new_term on device_presence_per_day
//     (DRONE_THEN_NEW_DEVICE), a value new to the group over the history whose first
//     appearance falls in the step, at most window after a first-step event of that group
//     (drones are common nationally; new devices after one are rare);
//   - baseline_threshold (bucket = every): at least min_groups groups with min_count events
//     in the step's bucket;
//   - value_count, new_term, event_count: at least one row matching where in the window;
//     for value_count and event_count, a row of a group that reaches every distinct minimum
//     (and the event threshold) over the whole catch-up range, as it must to reach them in
//     one window of it (SIM_CHURN_SHARED_SIM: a SIM in three handsets, where nearly every
//     SIM has one).
//
// Without a safe pre-check (baseline buckets other than the step, unaligned watermark) the
// rule is stepped window by window.
type precheck struct {
	query string
	reach time.Duration
}

// slotExpr is the index of the slot of every holding the time column col.
func slotExpr(col string, every time.Duration) string {
	return fmt.Sprintf("toInt64(intDiv(toUnixTimestamp(toDateTime(%s, 'UTC')), %d))", col, int64(every/time.Second))
}

// roundUp rounds d up to a multiple of every.
func roundUp(d, every time.Duration) time.Duration {
	return (d + every - 1) / every * every
}

// precheckFor returns r's pre-check for the steps ending in (from, to], or false.
func precheckFor(db string, r *rules.Rule, from, to time.Time) (precheck, bool) {
	if r.Every < time.Second || r.Every%time.Second != 0 || from.UnixMilli()%r.Every.Milliseconds() != 0 {
		return precheck{}, false
	}
	switch r.Type {
	case rules.Sequence:
		if q, ok := newDeviceAfterFirst(db, r, from, to); ok {
			return precheck{query: q}, true
		}
		// firstFrom = E - every - window <= t1 < E.
		src := rules.Sources["detections"]
		if ab := r.First.ActiveBefore; ab != nil && r.Then.NewTerm == nil {
			// The pairs of sequenceQuery over the whole range at once: a step ending at E
			// finds a group only with a then event in [E - every, E), the slot of its t2.
			g := src.Columns[r.GroupBy[0].Name]
			return precheck{query: fmt.Sprintf(`WITH firsts AS (%[1]s),
thens AS (SELECT %[2]s AS g0, observed_at AS t2 FROM `+"`%[3]s`"+`.detections WHERE %[4]s AND %[2]s IN (SELECT g0 FROM firsts))
SELECT DISTINCT %[5]s AS slot FROM firsts AS f INNER JOIN thens AS t ON f.g0 = t.g0
WHERE t.t2 >= f.t1 + toIntervalMillisecond(%[6]d) AND t.t2 <= f.t1 + toIntervalMillisecond(%[7]d)`,
				activeBefore(db, r, ab, g, from.Add(-r.Every-r.Window), to, ""), g, db,
				and(between(src, from.Add(-r.Every), to), r.Where.SQL(src), r.Then.Where.SQL(src)),
				slotExpr("t.t2", r.Every), r.MinGap.Milliseconds(), r.Window.Milliseconds())}, true
		}
		return precheck{
			query: fmt.Sprintf("SELECT DISTINCT %s AS slot FROM `%s`.detections WHERE %s AND %s AND %s",
				slotExpr(src.Time, r.Every), db, between(src, from.Add(-r.Every-r.Window), to), r.Where.SQL(src), r.First.Where.SQL(src)),
			reach: roundUp(r.Window, r.Every) + r.Every,
		}, true
	case rules.ValueCount, rules.NewTerm, rules.EventCount:
		// E - window <= t < E; a daily row is compared by its day, up to a day earlier.
		src := r.Source
		slack := time.Duration(0)
		if src.DayGranularity {
			slack = rules.Day
		}
		sel, names, nonEmpty := groupCols(r, src)
		rows := and(between(src, from.Add(-r.Window-slack), to), r.Where.SQL(src), nonEmpty)
		if having := reachable(r, src); r.Type != rules.NewTerm && having != "" {
			cols := make([]string, len(r.GroupBy))
			for i, g := range r.GroupBy {
				cols[i] = src.Columns[g.Name]
			}
			rows = and(rows, fmt.Sprintf("(%s) IN (SELECT %s FROM `%s`.%s WHERE %s GROUP BY %s HAVING %s)",
				strings.Join(cols, ", "), strings.Join(sel, ", "), db, src.Name, rows, strings.Join(names, ", "), having))
		}
		return precheck{
			query: fmt.Sprintf("SELECT DISTINCT %s AS slot FROM `%s`.%s WHERE %s", slotExpr(src.Time, r.Every), db, src.Name, rows),
			reach: roundUp(r.Window+slack, r.Every),
		}, true
	case rules.BaselineThreshold:
		if r.Bucket != r.Every {
			return precheck{}, false
		}
		// The step's bucket is its slot: min_groups groups with min_count events in it.
		src := r.Source
		g := src.Columns[r.GroupBy[0].Name]
		return precheck{
			query: fmt.Sprintf(`SELECT slot FROM (
  SELECT %s AS slot, %s AS g0, %s AS n FROM `+"`%s`"+`.%s
  WHERE %s AND %s AND %s != '' GROUP BY slot, g0 HAVING n >= %d
) GROUP BY slot HAVING count() >= %d`,
				slotExpr(src.Time, r.Every), g, src.Count, db, src.Name, between(src, from, to), r.Where.SQL(src), g, r.MinCount, r.MinGroups),
		}, true
	}
	return precheck{}, false
}

// reachable is the HAVING condition a group must meet over a whole range to meet r's
// conditions in one window of it: every distinct minimum, and an event_count's threshold
// ("" when r has neither).
func reachable(r *rules.Rule, src *rules.Source) string {
	var conds []string
	for _, d := range r.Distinct {
		if d.Min > 1 {
			conds = append(conds, fmt.Sprintf("%s >= %d", src.DistinctExpr(d.Field.Name), d.Min))
		}
	}
	if r.Type == rules.EventCount && r.Threshold > 1 {
		conds = append(conds, fmt.Sprintf("%s >= %d", src.Count, r.Threshold))
	}
	return strings.Join(conds, " AND ")
}

// candidates lists, in order, the steps of r ending in (from, to] that the pre-check keeps,
// or false when r has no pre-check.
func (s *Scheduler) candidates(ctx context.Context, r *rules.Rule, from, to time.Time) ([]time.Time, bool, error) {
	pc, ok := precheckFor(s.db, r, from, to)
	if !ok {
		return nil, false, nil
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.EvaluationTimeout)
	defer cancel()
	rows, err := s.conn.Query(qctx, pc.query)
	if err != nil {
		return nil, false, fmt.Errorf("pre-check of %s: %w", r.ID, err)
	}
	defer rows.Close()
	keep := map[int64]bool{} // step ends, Unix seconds
	every := int64(r.Every / time.Second)
	for rows.Next() {
		var slot int64
		if err := rows.Scan(&slot); err != nil {
			return nil, false, fmt.Errorf("scan pre-check of %s: %w", r.ID, err)
		}
		first := (slot + 1) * every
		for end := first; end <= first+int64(pc.reach/time.Second); end += every {
			if end > from.Unix() && end <= to.Unix() {
				keep[end] = true
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read pre-check of %s: %w", r.ID, err)
	}
	steps := make([]time.Time, 0, len(keep))
	for _, end := range slices.Sorted(maps.Keys(keep)) {
		steps = append(steps, time.Unix(end, 0).UTC())
	}
	return steps, true, nil
}

// newDeviceAfterFirst is the pre-check of a sequence whose then step is new_term on
// device_presence_per_day: the slots (steps) holding the first appearance (first_seen) of a
// value whose previous day of presence in the group is more than history before it (or
// none), within window after a first-step event of the same group. A finding of the step
// ending at E needs such a first appearance in [E - every, E): its value's earlier days in
// the group are all before E - every - history, so before first_seen - history.
func newDeviceAfterFirst(db string, r *rules.Rule, from, to time.Time) (string, bool) {
	nt := r.Then.NewTerm
	if nt == nil || nt.Source.Name != "device_presence_per_day" || r.First.ActiveBefore != nil {
		return "", false
	}
	pres := nt.Source
	pg, pv := pres.Columns[r.GroupBy[0].Name], pres.Columns[nt.Field.Name]
	if pg == "" || pv == "" {
		return "", false
	}
	src := rules.Sources["detections"]
	g := src.Columns[r.GroupBy[0].Name]
	return fmt.Sprintf(`WITH firsts AS (
  SELECT %[1]s AS g0, observed_at AS t1 FROM `+"`%[2]s`"+`.detections
  WHERE %[3]s AND %[4]s AND %[5]s AND %[1]s != ''
),
appearances AS (
  SELECT g0, v, fs, lagInFrame(day, 1, toDate('1970-01-01')) OVER (PARTITION BY g0, v ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS prev
  FROM (
    SELECT %[6]s AS g0, %[7]s AS v, day, min(first_seen) AS fs FROM `+"`%[2]s`"+`.device_presence_per_day
    WHERE day >= %[8]s AND day <= %[9]s AND %[6]s IN (SELECT g0 FROM firsts) AND %[7]s != ''
    GROUP BY g0, v, day
  )
)
SELECT DISTINCT %[10]s AS slot
FROM appearances AS a INNER JOIN firsts AS f ON a.g0 = f.g0
WHERE a.fs >= %[11]s AND a.fs < %[12]s AND a.prev < toDate(a.fs - toIntervalMillisecond(%[13]d), 'UTC')
  AND f.t1 <= a.fs AND f.t1 >= a.fs - toIntervalMillisecond(%[14]d)`,
		g, db, between(src, from.Add(-r.Window), to), r.Where.SQL(src), r.First.Where.SQL(src),
		pg, pv, timeLit(pres, from.Add(-nt.History-rules.Day)), timeLit(pres, to),
		slotExpr("a.fs", r.Every), dt64(from), dt64(to), nt.History.Milliseconds(), r.Window.Milliseconds()), true
}
