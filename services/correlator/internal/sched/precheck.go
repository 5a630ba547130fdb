package sched

import (
	"context"
	"fmt"
	"sort"
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
//     events (drones, searches: rare);
//   - baseline_threshold (bucket = every): at least min_groups groups with min_count events
//     in the step's bucket;
//   - value_count, new_term, event_count: at least one row matching where in the window.
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
		// firstFrom = E - every - window <= t1 < E.
		src := rules.Sources["detections"]
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
		_, _, nonEmpty := groupCols(r, src)
		return precheck{
			query: fmt.Sprintf("SELECT DISTINCT %s AS slot FROM `%s`.%s WHERE %s AND %s AND %s",
				slotExpr(src.Time, r.Every), db, src.Name, between(src, from.Add(-r.Window-slack), to), r.Where.SQL(src), nonEmpty),
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

// candidates lists, in order, the steps of r ending in (from, to] that the pre-check keeps,
// or false when r has no pre-check.
func (s *Scheduler) candidates(ctx context.Context, r *rules.Rule, from, to time.Time) ([]time.Time, bool, error) {
	pc, ok := precheckFor(s.db, r, from, to)
	if !ok {
		return nil, false, nil
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
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
	for end := range keep {
		steps = append(steps, time.Unix(end, 0).UTC())
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].Before(steps[j]) })
	return steps, true, nil
}
