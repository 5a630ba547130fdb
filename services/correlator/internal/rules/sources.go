package rules

import (
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// Source is a ClickHouse table scheduled rules read: the raw detections or a rollup.
type Source struct {
	Name string
	// Time is the column that places a row in time; DayGranularity means it is a Date, so
	// windows and steps must be whole days.
	Time           string
	DayGranularity bool
	// Columns maps the fields the table carries to their SQL expressions.
	Columns map[string]string
	// Count counts events; Distinct counts distinct values of a field (default uniqExact);
	// First and Last give the first and last evidence times.
	Count, First, Last string
	Distinct           map[string]string
	// Facilities lists a group's facilities, sorted (empty: the table does not know them).
	// Set from the facility_id column unless the table keeps facilities as an aggregate
	// state (a national rollup).
	Facilities string
	// CountByDay is the events per day of a group of a daily rollup, as sumMap's (days,
	// counts) sorted by day: it tells which days hold a finding's earliest events.
	CountByDay string
	// Retention is how long the table keeps its rows (its TTL; 0: for ever). A rule that
	// needs more history than its table keeps would take what the TTL deleted for "unseen".
	Retention time.Duration
}

// DistinctExpr is the SQL expression counting distinct values of field in s.
func (s *Source) DistinctExpr(field string) string {
	if e, ok := s.Distinct[field]; ok {
		return e
	}
	return "uniqExact(" + s.Columns[field] + ")"
}

// Sources lists the tables of schemas/clickhouse that scheduled rules may read. It is built
// once, at package initialisation (after Fields, which the detections source reads), and
// never changed.
var Sources = completeSources(map[string]*Source{
	"detections": {
		Name: "detections", Time: "observed_at", Retention: event.Retention,
		Count: "count()", First: "min(observed_at)", Last: "max(observed_at)",
	},
	"tac_per_day": {
		Name: "tac_per_day", Time: "day", DayGranularity: true,
		Columns: map[string]string{"tac": "tac", "facility_id": "facility_id"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
	"serial_block_per_day": {
		Name: "serial_block_per_day", Time: "day", DayGranularity: true, Retention: event.Retention,
		Columns: map[string]string{"tac": "tac", "serial_block": "serial_block", "facility_id": "facility_id"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
	// One row per (tac, block, day) nationally, the facilities a merged set, so
	// BATCH_RANGE merges as many times fewer rows as facilities report a block on a day.
	"serial_block_national_per_day": {
		Name: "serial_block_national_per_day", Time: "day", DayGranularity: true, Retention: event.Retention,
		Columns: map[string]string{"tac": "tac", "serial_block": "serial_block"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{
			"device_id":   "uniqMerge(devices)",
			"facility_id": "length(groupUniqArrayArray(facility_ids))",
		},
		Facilities: "arraySort(groupUniqArrayArray(facility_ids))",
	},
	"device_presence_per_day": {
		Name: "device_presence_per_day", Time: "day", DayGranularity: true, Retention: event.Retention,
		Columns: map[string]string{"facility_id": "facility_id", "device_id": "device_id", "tac": "tac"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
	},
	"detections_per_minute": {
		Name: "detections_per_minute", Time: "minute",
		Columns: map[string]string{"facility_id": "facility_id", "kind": "kind"},
		Count:   "sum(events)", First: "min(minute)", Last: "max(minute) + INTERVAL 59 SECOND",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
})

// completeSources derives what the table definitions leave implicit: the detections table
// carries every catalogue field, facilities are listed from the facility_id column, and a
// daily rollup counts its events per day.
func completeSources(sources map[string]*Source) map[string]*Source {
	cols := make(map[string]string, len(Fields))
	for name, f := range Fields {
		cols[name] = f.Column
	}
	sources["detections"].Columns = cols
	for _, src := range sources {
		if col, ok := src.Columns["facility_id"]; ok && src.Facilities == "" {
			src.Facilities = "arraySort(groupUniqArray(toString(" + col + ")))"
		}
		if src.DayGranularity && src.Count == "sum(events)" {
			src.CountByDay = "sumMap([" + src.Time + "], [toUInt64(events)])"
		}
	}
	return sources
}
