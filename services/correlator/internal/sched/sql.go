package sched

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// timeLit renders t as a literal comparable with src's time column.
func timeLit(src *rules.Source, t time.Time) string {
	t = t.UTC()
	switch {
	case src.DayGranularity:
		return "toDate('" + t.Format("2006-01-02") + "')"
	case src.Name == "detections_per_minute":
		return "toDateTime('" + t.Format("2006-01-02 15:04:05") + "', 'UTC')"
	}
	return dt64(t)
}

func dt64(t time.Time) string {
	return "toDateTime64('" + t.UTC().Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')"
}

// between is the condition from <= time < to on src's time column.
func between(src *rules.Source, from, to time.Time) string {
	return fmt.Sprintf("%s >= %s AND %s < %s", src.Time, timeLit(src, from), src.Time, timeLit(src, to))
}

// groupCols returns the group fields' expressions aliased g0, g1, … and their non-empty
// conditions.
func groupCols(r *rules.Rule, src *rules.Source) (sel, names []string, nonEmpty string) {
	var conds []string
	for i, g := range r.GroupBy {
		col := src.Columns[g.Name]
		name := fmt.Sprintf("g%d", i)
		sel = append(sel, col+" AS "+name)
		names = append(names, name)
		conds = append(conds, col+" != ''")
	}
	return sel, names, strings.Join(conds, " AND ")
}

// facilitiesExpr lists a group's facilities, when src has them.
func facilitiesExpr(src *rules.Source) string {
	if src.Facilities != "" {
		return src.Facilities
	}
	return "CAST([], 'Array(String)')"
}

// evidenceExpr is the bounded, deterministic list of evidence ids: the earliest n events.
func evidenceExpr(src *rules.Source, n int) string {
	if src.Name != "detections" {
		return "CAST([], 'Array(String)')"
	}
	return fmt.Sprintf("arrayMap(x -> x.2, groupArraySorted(%d)((observed_at, event_id)))", n)
}

// evidenceDaysExpr lists, for a daily rollup, the days holding a group's n earliest events:
// its days in order up to the first by which it has n events (all of them if it has fewer).
// The evidence lookup in detections then reads those days instead of the whole window.
func evidenceDaysExpr(src *rules.Source, n int) string {
	if src.CountByDay == "" {
		return "CAST([], 'Array(Date)')"
	}
	return fmt.Sprintf("arraySlice((%s AS days_counts).1, 1, if((arrayFirstIndex(c -> c >= %d, arrayCumSum(days_counts.2)) AS days_enough) = 0, length(days_counts.1), days_enough))",
		src.CountByDay, n)
}

// coveredCond is the condition that a row of src is at a facility whose data covers r's
// need at the step ending at end (its first event at or before end - need:
// facility_coverage, migration 0007), or "" when r needs no history.
func coveredCond(db string, r *rules.Rule, src *rules.Source, end time.Time) string {
	need, _ := r.Needs()
	if need <= 0 {
		return ""
	}
	return src.Columns["facility_id"] + " IN (" + coveredQuery(db, end.Add(-need)) + ")"
}

// coveredQuery lists the facilities whose first event is at or before since.
func coveredQuery(db string, since time.Time) string {
	return fmt.Sprintf("SELECT facility_id FROM `%s`.facility_coverage GROUP BY facility_id HAVING min(first_seen) <= %s", db, dt64(since))
}

// and joins the non-empty conditions with AND.
func and(conds ...string) string {
	var out []string
	for _, c := range conds {
		if c != "" {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "1"
	}
	return strings.Join(out, " AND ")
}

// aggregateQuery is value_count, new_term and event_count: one row per group meeting the
// distinct conditions. new_term adds the history before the window and requires it to be
// empty. Only rows at facilities covered for the rule's need count in the window; a
// new_term's history counts at every facility (seen anywhere is not new). in, when not
// empty, restricts the rows further (a growth rule's new (group, facility) pairs).
func aggregateQuery(db string, r *rules.Rule, end time.Time, in string) string {
	src := r.Source
	sel, names, nonEmpty := groupCols(r, src)
	start := end.Add(-r.Window)
	from := start
	covered := coveredCond(db, r, src, end)
	if r.Growth != nil {
		covered = "" // the new pairs are at covered facilities
	}
	if r.Type == rules.NewTerm {
		from = start.Add(-r.History)
		if covered != "" {
			covered = fmt.Sprintf("(%s < %s OR %s)", src.Time, timeLit(src, start), covered)
		}
	}
	var having []string
	var distinct []string
	for i, d := range r.Distinct {
		distinct = append(distinct, fmt.Sprintf("%s AS d%d", src.DistinctExpr(d.Field.Name), i))
		having = append(having, fmt.Sprintf("d%d >= %d", i, d.Min))
	}
	if r.Type == rules.EventCount {
		having = append(having, fmt.Sprintf("n >= %d", r.Threshold))
	}
	if r.Type == rules.NewTerm {
		having = append(having, fmt.Sprintf("countIf(%s < %s) = 0", src.Time, timeLit(src, start)))
	}
	cols := append(append([]string{}, sel...), distinct...)
	cols = append(cols,
		src.Count+" AS n",
		"toDateTime64("+src.First+", 3, 'UTC') AS first_at",
		"toDateTime64("+src.Last+", 3, 'UTC') AS last_at",
		facilitiesExpr(src)+" AS facilities",
		evidenceExpr(src, r.MaxEvidence)+" AS evidence",
		evidenceDaysExpr(src, r.MaxEvidence)+" AS evidence_days")
	return fmt.Sprintf("SELECT %s\nFROM `%s`.%s\nWHERE %s\nGROUP BY %s\nHAVING %s\nORDER BY %s",
		strings.Join(cols, ", "), db, src.Name, and(between(src, from, end), r.Where.SQL(src), nonEmpty, covered, in),
		strings.Join(names, ", "), and(having...), strings.Join(names, ", "))
}

// growthQuery is the first step of a value_count rule with a growth baseline: the groups
// with at least MinNew facilities new to them in the window (first seen there after the
// baseline window began, at facilities covered for the rule's need), at least
// Growth.Factor times the facilities their footprint key (Growth.Of) was seen at during
// the baseline. One row per group: its values, its new facilities (sorted) and its
// footprint. It reads no aggregate state (only keys and days), so a quiet day costs one
// scan of the keys; the devices of the few groups it returns are counted by aggregateQuery
// restricted to their new pairs.
func growthQuery(db string, r *rules.Rule, end time.Time) string {
	src := r.Source
	sel, names, nonEmpty := groupCols(r, src)
	start := end.Add(-r.Window)
	fcol := src.Columns["facility_id"]
	isNew := fmt.Sprintf("first_t >= %s", timeLit(src, start))
	if need, _ := r.Needs(); need > 0 {
		isNew += " AND f IN (" + coveredQuery(db, end.Add(-need)) + ")"
	}
	pairs := fmt.Sprintf("SELECT %s, %s AS f, min(%s) AS first_t FROM `%s`.%s WHERE %s GROUP BY %s, f",
		strings.Join(sel, ", "), fcol, src.Time, db, src.Name,
		and(between(src, start.Add(-r.BaselineWindow), end), r.Where.SQL(src), nonEmpty), strings.Join(names, ", "))
	newF := fmt.Sprintf("arraySort(groupArrayIf(toString(f), %s)) AS new_f", isNew)
	base := fmt.Sprintf("uniqExactIf(f, first_t < %s) AS base_n", timeLit(src, start))
	var of, on []string
	for _, g := range r.Growth.Of {
		for i, gb := range r.GroupBy {
			if gb.Name == g.Name {
				of = append(of, names[i])
				on = append(on, fmt.Sprintf("p.%s = fp.%s", names[i], names[i]))
			}
		}
	}
	if len(of) == len(names) {
		return fmt.Sprintf("WITH pairs AS (%s)\nSELECT %s, %s, %s FROM pairs GROUP BY %s\nHAVING length(new_f) >= %d AND length(new_f) >= %g * base_n\nORDER BY %s",
			pairs, strings.Join(names, ", "), newF, base, strings.Join(names, ", "), r.MinNew(), r.Growth.Factor, strings.Join(names, ", "))
	}
	var pSel []string
	for _, n := range names {
		pSel = append(pSel, "p."+n+" AS "+n)
	}
	return fmt.Sprintf(`WITH pairs AS (%[1]s)
SELECT %[2]s, p.new_f AS new_f, fp.base_n AS base_n FROM (
  SELECT %[3]s, %[4]s FROM pairs GROUP BY %[3]s HAVING length(new_f) >= %[5]d
) AS p INNER JOIN (
  SELECT %[6]s, %[7]s FROM pairs GROUP BY %[6]s
) AS fp ON %[8]s
WHERE length(p.new_f) >= %[9]g * fp.base_n
ORDER BY %[3]s`,
		pairs, strings.Join(pSel, ", "), strings.Join(names, ", "), newF, r.MinNew(),
		strings.Join(of, ", "), base, strings.Join(on, " AND "), r.Growth.Factor)
}

// pairsIn is the condition restricting a rule's rows to the given groups at the given
// facilities: (group columns, facility_id) IN ((…), …).
func pairsIn(r *rules.Rule, groups []grown) string {
	src := r.Source
	var cols, tuples []string
	for _, g := range r.GroupBy {
		cols = append(cols, src.Columns[g.Name])
	}
	cols = append(cols, src.Columns["facility_id"])
	for _, g := range groups {
		for _, f := range g.newFacilities {
			tuples = append(tuples, "("+quoteAll(append(append([]string{}, g.values...), f))+")")
		}
	}
	return fmt.Sprintf("(%s) IN (%s)", strings.Join(cols, ", "), strings.Join(tuples, ", "))
}

// sequenceQuery pairs first-step events (within window before the step) with then-step
// events of this step (end-every, end], one row per group, only at facilities covered for
// the rule's need. A then-step new_term keeps only the first event of each value new to
// the group over its history, and counts those of the whole window before the step's end
// (a finding needs one in the step): with a minimum, the group needs that many (its
// baseline is usualQuery's, for the few groups found).
func sequenceQuery(db string, r *rules.Rule, end time.Time) string {
	src := rules.Sources["detections"]
	stepStart := end.Add(-r.Every)
	firstFrom := stepStart.Add(-r.Window)
	g := src.Columns[r.GroupBy[0].Name]
	covered := coveredCond(db, r, src, end)
	thenCovered := covered
	if r.GroupBy[0].Name == "facility_id" {
		thenCovered = "" // a then event is at its group's facility, which firsts checked
	}
	var diffSel1, diffSel2, diffCond []string
	for i, d := range r.Different {
		col := src.Columns[d.Name]
		diffSel1 = append(diffSel1, fmt.Sprintf(", %s AS x%d", col, i))
		diffSel2 = append(diffSel2, fmt.Sprintf(", %s AS y%d", col, i))
		diffCond = append(diffCond, fmt.Sprintf(" AND f.x%d != t.y%d", i, i))
	}
	thenMatch := and(r.Where.SQL(src), r.Then.Where.SQL(src))
	thenWhere := thenMatch
	thenFrom := stepStart
	ctes, outer := "", "\nWHERE a.n >= 1"
	if nt := r.Then.NewTerm; nt != nil {
		thenFrom = firstFrom
		v := src.Columns[nt.Field.Name]
		var first string
		if nt.Source.Name == "device_presence_per_day" {
			first = fmt.Sprintf("SELECT facility_id AS g0, device_id AS v, min(first_seen) AS first_seen FROM `%s`.device_presence_per_day "+
				"WHERE day >= %s AND day <= %s AND facility_id IN (SELECT g0 FROM firsts) GROUP BY g0, v",
				db, timeLit(nt.Source, firstFrom.Add(-nt.History)), timeLit(nt.Source, end))
		} else {
			first = fmt.Sprintf("SELECT %s AS g0, %s AS v, min(observed_at) AS first_seen FROM `%s`.detections "+
				"WHERE %s AND %s AND %s IN (SELECT g0 FROM firsts) AND %s != '' GROUP BY g0, v",
				g, v, db, between(src, firstFrom.Add(-nt.History), end), thenMatch, g, v)
		}
		ctes += fmt.Sprintf(",\nfirst_values AS (%s),\nnew_values AS (SELECT g0, v, first_seen FROM first_values WHERE first_seen >= %s AND first_seen < %s)",
			first, dt64(firstFrom), dt64(end))
		thenWhere += fmt.Sprintf(" AND (%s, %s, observed_at) IN (SELECT g0, v, first_seen FROM new_values)", g, v)
		outer = fmt.Sprintf("\nWHERE a.n >= %d AND a.last_at >= %s", nt.Min, dt64(stepStart))
	}
	firsts := fmt.Sprintf(`SELECT %[1]s AS g0, observed_at AS t1, event_id AS id1, toString(facility_id) AS f1%[2]s
  FROM `+"`%[3]s`"+`.detections
  WHERE %[4]s AND %[1]s != ''`,
		g, strings.Join(diffSel1, ""), db, and(between(src, firstFrom, end), r.Where.SQL(src), r.First.Where.SQL(src), covered))
	if ab := r.First.ActiveBefore; ab != nil {
		firsts = activeBefore(db, r, ab, g, firstFrom, end, covered)
	}
	return fmt.Sprintf(`WITH firsts AS (
  %[1]s
)%[2]s,
thens AS (
  SELECT %[3]s AS g0, observed_at AS t2, event_id AS id2, toString(facility_id) AS f2%[4]s
  FROM `+"`%[5]s`"+`.detections
  WHERE %[6]s AND %[3]s IN (SELECT g0 FROM firsts)
)
SELECT a.g0 AS g0, a.n AS n, a.first_at AS first_at, a.last_at AS last_at, a.facilities AS facilities, a.evidence AS evidence FROM (
  SELECT g0, uniqExact(id2) AS n, min(t1) AS first_at, max(t2) AS last_at,
    arraySort(arrayDistinct(arrayConcat(groupUniqArray(f1), groupUniqArray(f2)))) AS facilities,
    arrayConcat(arraySort(groupUniqArray(%[7]d)(id1)), arrayMap(x -> x.2, groupArraySorted(%[7]d)((t2, id2)))) AS evidence
  FROM firsts AS f INNER JOIN thens AS t ON f.g0 = t.g0
  WHERE t.t2 >= f.t1 + toIntervalMillisecond(%[8]d) AND t.t2 <= f.t1 + toIntervalMillisecond(%[9]d)%[10]s
  GROUP BY g0
) AS a%[11]s
ORDER BY g0`,
		firsts, ctes, g, strings.Join(diffSel2, ""), db, and(between(src, thenFrom, end), thenWhere, thenCovered),
		r.MaxEvidence/2, r.MinGap.Milliseconds(), r.Window.Milliseconds(), strings.Join(diffCond, ""), outer)
}

// usualQuery is a new_term step's baseline for the groups found at the step ending at
// end: per group, its new values per window over the baseline window before the rule's
// window, i.e. its values whose first appearance within the history falls in that span and
// whose first event matches the then step. One row per group: g0, the count.
func usualQuery(db string, r *rules.Rule, end time.Time, groups []string) string {
	src := rules.Sources["detections"]
	nt := r.Then.NewTerm
	g, v := src.Columns[r.GroupBy[0].Name], src.Columns[nt.Field.Name]
	until := end.Add(-r.Every - r.Window)
	from := until.Add(-nt.Baseline.Window)
	return fmt.Sprintf(`WITH first_values AS (
  SELECT facility_id AS g0, device_id AS v, min(first_seen) AS first_seen FROM `+"`%[1]s`"+`.device_presence_per_day
  WHERE day >= %[2]s AND day <= %[3]s AND facility_id IN (%[4]s) GROUP BY g0, v
  HAVING first_seen >= %[5]s AND first_seen < %[6]s
)
SELECT %[7]s AS g0, uniqExact(%[8]s) AS c FROM `+"`%[1]s`"+`.detections
WHERE %[9]s AND %[7]s IN (%[4]s)
  AND (%[7]s, %[8]s, observed_at) IN (SELECT g0, v, first_seen FROM first_values)
GROUP BY g0`,
		db, timeLit(nt.Source, until.Add(-nt.History)), timeLit(nt.Source, until), quoteAll(groups), dt64(from), dt64(until),
		g, v, and(between(src, from, until), r.Where.SQL(src), r.Then.Where.SQL(src)))
}

// activeBefore is the first step of a sequence whose groups are those active at the same
// place (ab.Same) within ab.Within before each first-step event: one row per (group, event).
func activeBefore(db string, r *rules.Rule, ab *rules.ActiveBefore, g string, from, end time.Time, covered string) string {
	src := rules.Sources["detections"]
	var sel, on []string
	for i, f := range ab.Same {
		sel = append(sel, fmt.Sprintf("%s AS s%d", src.Columns[f.Name], i))
		on = append(on, fmt.Sprintf("e.s%d = a.s%d AND e.s%d != ''", i, i, i))
	}
	return fmt.Sprintf(`SELECT DISTINCT a.g0 AS g0, e.t1 AS t1, e.id1 AS id1, e.f1 AS f1 FROM (
    SELECT observed_at AS t1, event_id AS id1, toString(facility_id) AS f1, %[1]s FROM `+"`%[2]s`"+`.detections
    WHERE %[3]s
  ) AS e INNER JOIN (
    SELECT %[4]s AS g0, observed_at AS ta, %[1]s FROM `+"`%[2]s`"+`.detections
    WHERE %[5]s AND %[6]s AND %[4]s != ''
  ) AS a ON %[7]s
  WHERE a.ta >= e.t1 - toIntervalMillisecond(%[8]d) AND a.ta < e.t1`,
		strings.Join(sel, ", "), db, and(between(src, from, end), r.Where.SQL(src), r.First.Where.SQL(src), covered),
		g, between(src, from.Add(-ab.Within), end), ab.Where.SQL(src), strings.Join(on, " AND "), ab.Within.Milliseconds())
}

// baselineQuery returns the groups whose count in the bucket (end-bucket, end] exceeds their
// baseline: buckets of the baseline window before it (of the same hour of day when asked),
// counting empty buckets as zeros.
func baselineQuery(db string, r *rules.Rule, end time.Time) string {
	src := r.Source
	g := src.Columns[r.GroupBy[0].Name]
	bucketStart := end.Add(-r.Bucket)
	// Only facilities whose data covers the baseline: one without it would be compared
	// with zeros, and its first busy hour would look like a burst.
	where := and(r.Where.SQL(src), coveredCond(db, r, src, end))
	var ranges []string
	n := 0
	if r.SameHourOfDay {
		// The same hour of each of the days before: one range and the hour of day, not one
		// range per day. The ranges could not skip granules anyway (a granule of a per-minute
		// rollup spans days of one facility), and a 28-way OR per row cost twice as much.
		hour := bucketStart.Truncate(time.Hour)
		days := int(r.BaselineWindow / rules.Day)
		ranges = append(ranges, fmt.Sprintf("%s AND toHour(%s) = %d",
			between(src, hour.Add(-time.Duration(days)*rules.Day), hour.Add(-rules.Day+time.Hour)), src.Time, hour.UTC().Hour()))
		n = days * int(time.Hour/r.Bucket)
	} else {
		ranges = append(ranges, "("+between(src, bucketStart.Add(-r.BaselineWindow), bucketStart)+")")
		n = int(r.BaselineWindow / r.Bucket)
	}
	return fmt.Sprintf(`WITH cur AS (
  SELECT %[1]s AS g0, %[2]s AS n FROM `+"`%[3]s`"+`.%[4]s
  WHERE %[5]s AND %[6]s AND %[1]s != '' GROUP BY g0
),
base AS (
  SELECT g0, sum(c) / %[7]d AS mean, sqrt(greatest(sum(c * c) / %[7]d - mean * mean, 0)) AS sd FROM (
    SELECT %[1]s AS g0, toStartOfInterval(%[8]s, toIntervalSecond(%[9]d)) AS b, toFloat64(%[2]s) AS c
    FROM `+"`%[3]s`"+`.%[4]s
    WHERE (%[10]s) AND %[6]s AND %[1]s IN (SELECT g0 FROM cur) GROUP BY g0, b
  ) GROUP BY g0
)
SELECT cur.g0 AS g0, cur.n AS n, base.mean AS mean, base.sd AS sd
FROM cur LEFT JOIN base ON cur.g0 = base.g0
WHERE cur.n >= %[11]d AND cur.n > base.mean + %[12]g * greatest(base.sd, %[13]g)
ORDER BY g0`,
		g, src.Count, db, src.Name, between(src, bucketStart, end), where, n, src.Time, int(r.Bucket.Seconds()),
		strings.Join(ranges, " OR "), r.MinCount, r.Stddevs, r.MinStddev)
}

// evidenceQuery fetches evidence ids from detections for a finding computed on a rollup:
// the earliest events of the group in the window.
func evidenceQuery(db string, r *rules.Rule, where rules.Filter, conds []string, from, to time.Time) string {
	src := rules.Sources["detections"]
	return fmt.Sprintf("SELECT arrayMap(x -> x.2, groupArraySorted(%d)((observed_at, event_id))) FROM `%s`.detections WHERE %s AND %s AND %s",
		r.MaxEvidence, db, between(src, from, to), where.SQL(src), strings.Join(conds, " AND "))
}

// evidenceGroup is one finding whose evidence ids groupsEvidenceQuery looks up: its group
// values and, for a daily rollup, the days that hold its earliest events.
type evidenceGroup struct {
	values []string
	days   []time.Time
	// facilities, when set, are the only facilities of the group's evidence (a growth
	// rule's new facilities).
	facilities []string
}

// groupsEvidenceQuery fetches, in one pass over detections, the evidence ids of several
// findings of r computed on a rollup: per group (g0, g1, …), the earliest events in
// [from, to), read only on the group's days when byDay. facilities, when not empty, are all
// the facilities of those findings: a group's events are at its facilities, and
// facility_id leads the table's sort key.
func groupsEvidenceQuery(db string, r *rules.Rule, groups []evidenceGroup, byDay bool, facilities []string, from, to time.Time) string {
	src := rules.Sources["detections"]
	var sel, names, cols, tuples []string
	for i, g := range r.GroupBy {
		sel = append(sel, fmt.Sprintf("%s AS g%d", g.Column, i))
		names = append(names, fmt.Sprintf("g%d", i))
		cols = append(cols, g.Column)
	}
	perFacility := len(groups) > 0 && groups[0].facilities != nil
	if perFacility {
		cols = append(cols, "facility_id")
	}
	if byDay {
		cols = append(cols, "toDate(observed_at)")
	}
	for _, g := range groups {
		keys := []string{quoteAll(g.values)}
		if perFacility {
			keys = keys[:0]
			for _, f := range g.facilities {
				keys = append(keys, quoteAll(g.values)+", "+rules.Quote(f))
			}
		}
		for _, k := range keys {
			if !byDay {
				tuples = append(tuples, "("+k+")")
				continue
			}
			for _, d := range g.days {
				// A plain string, converted to Date by the set: 600 toDate() calls in the
				// literal took 0.15 s to analyse.
				tuples = append(tuples, "("+k+", '"+d.UTC().Format("2006-01-02")+"')")
			}
		}
	}
	cond := fmt.Sprintf("(%s) IN (%s)", strings.Join(cols, ", "), strings.Join(tuples, ", "))
	if len(facilities) > 0 {
		cond += " AND facility_id IN (" + quoteAll(facilities) + ")"
	}
	return fmt.Sprintf("SELECT %s, arrayMap(x -> x.2, groupArraySorted(%d)((observed_at, event_id)))\nFROM `%s`.detections\nWHERE %s AND %s AND %s\nGROUP BY %s",
		strings.Join(sel, ", "), r.MaxEvidence, db, between(src, from, to), r.Where.SQL(src), cond, strings.Join(names, ", "))
}
