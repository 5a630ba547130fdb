package rules

import (
	"strconv"

	"github.com/vigie/vigie/pkg/event"
)

// Field is an event field a rule may filter, group or count on. Get reads it from an
// enriched event (streaming rules); Column is its SQL expression on the detections table
// (scheduled rules; rollups name their own columns in Source.Columns).
type Field struct {
	Name    string
	Get     func(e *event.Enriched) string
	Column  string
	Numeric bool
}

func str(f func(e *event.Enriched) string, column string) Field { return Field{Get: f, Column: column} }

func boolString(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// deviceID is the phone's identity for counting devices: the IMEI pseudonym, else the IMSI
// pseudonym, else empty (as the detections table's device_id column).
func deviceID(e *event.Enriched) string {
	if e.IMEIPseudo != "" {
		return e.IMEIPseudo
	}
	return e.IMSIPseudo
}

func seizedTotal(e *event.Enriched) string {
	if e.Seizure == nil {
		return "0"
	}
	return strconv.FormatInt(e.Seizure.Phones+e.Seizure.MiniPhones+e.Seizure.SIMs, 10)
}

// Fields is the catalogue of fields rules may use, by name.
var Fields = map[string]Field{
	"event_id":           str(func(e *event.Enriched) string { return e.EventID }, "event_id"),
	"sensor_id":          str(func(e *event.Enriched) string { return e.SensorID }, "sensor_id"),
	"kind":               str(func(e *event.Enriched) string { return string(e.Kind) }, "kind"),
	"zone":               str(func(e *event.Enriched) string { return e.Zone }, "zone"),
	"cell":               str(func(e *event.Enriched) string { return e.Cell }, "cell"),
	"rat":                str(func(e *event.Enriched) string { return string(e.RAT) }, "rat"),
	"band":               str(func(e *event.Enriched) string { return e.Band }, "band"),
	"outcome":            str(func(e *event.Enriched) string { return string(e.Outcome) }, "outcome"),
	"facility_id":        str(func(e *event.Enriched) string { return e.FacilityID }, "facility_id"),
	"facility_type":      str(func(e *event.Enriched) string { return e.FacilityType }, "facility_type"),
	"disp":               str(func(e *event.Enriched) string { return e.DISP }, "disp"),
	"region_code":        str(func(e *event.Enriched) string { return e.RegionCode }, "region_code"),
	"department_code":    str(func(e *event.Enriched) string { return e.DepartmentCode }, "department_code"),
	"building":           str(func(e *event.Enriched) string { return e.Building }, "building"),
	"zone_type":          str(func(e *event.Enriched) string { return e.ZoneType }, "zone_type"),
	"sensor_type":        str(func(e *event.Enriched) string { return e.SensorType }, "sensor_type"),
	"vendor":             str(func(e *event.Enriched) string { return e.Vendor }, "vendor"),
	"imei_pseudo":        str(func(e *event.Enriched) string { return e.IMEIPseudo }, "imei_pseudo"),
	"imsi_pseudo":        str(func(e *event.Enriched) string { return e.IMSIPseudo }, "imsi_pseudo"),
	"msisdn_pseudo":      str(func(e *event.Enriched) string { return e.MSISDNPseudo }, "msisdn_pseudo"),
	"tac":                str(func(e *event.Enriched) string { return e.TAC }, "tac"),
	"imei_serial_prefix": str(func(e *event.Enriched) string { return e.IMEISerialPrefix }, "imei_serial_prefix"),
	"mcc":                str(func(e *event.Enriched) string { return e.MCC }, "mcc"),
	"mnc":                str(func(e *event.Enriched) string { return e.MNC }, "mnc"),
	"manufacturer":       str(func(e *event.Enriched) string { return e.Manufacturer }, "manufacturer"),
	"model":              str(func(e *event.Enriched) string { return e.Model }, "model"),
	"mini_phone":         str(func(e *event.Enriched) string { return boolString(e.MiniPhone) }, "if(isNull(mini_phone), '', toString(mini_phone))"),
	"operator":           str(func(e *event.Enriched) string { return e.Operator }, "operator"),
	"country":            str(func(e *event.Enriched) string { return e.Country }, "country"),
	"device_key":         str(func(e *event.Enriched) string { return e.Enrichment.DeviceKey }, "device_key"),
	"device_id":          str(deviceID, "device_id"),
	"search_id": str(func(e *event.Enriched) string {
		if e.Seizure == nil {
			return ""
		}
		return e.Seizure.SearchID
	}, "search_id"),
	"seized_total": {Get: seizedTotal, Column: "seized_phones + seized_mini_phones + seized_sims", Numeric: true},
}

func init() {
	for name, f := range Fields {
		f.Name = name
		Fields[name] = f
	}
}

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
}

// DistinctExpr is the SQL expression counting distinct values of field in s.
func (s *Source) DistinctExpr(field string) string {
	if e, ok := s.Distinct[field]; ok {
		return e
	}
	return "uniqExact(" + s.Columns[field] + ")"
}

// Sources lists the tables of schemas/clickhouse that scheduled rules may read.
var Sources = map[string]*Source{
	"detections": {
		Name: "detections", Time: "observed_at",
		Count: "count()", First: "min(observed_at)", Last: "max(observed_at)",
	},
	"tac_per_day": {
		Name: "tac_per_day", Time: "day", DayGranularity: true,
		Columns: map[string]string{"tac": "tac", "facility_id": "facility_id"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
	"tac_block_per_day": {
		Name: "tac_block_per_day", Time: "day", DayGranularity: true,
		Columns: map[string]string{"tac": "tac", "imei_serial_prefix": "imei_serial_prefix", "facility_id": "facility_id"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
	// One row per (tac, block, day) nationally, the facilities a merged set, so
	// BATCH_RANGE merges as many times fewer rows as facilities report a block on a day.
	"tac_block_national_per_day": {
		Name: "tac_block_national_per_day", Time: "day", DayGranularity: true,
		Columns: map[string]string{"tac": "tac", "imei_serial_prefix": "imei_serial_prefix"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
		Distinct: map[string]string{
			"device_id":   "uniqMerge(devices)",
			"facility_id": "length(groupUniqArrayArray(facility_ids))",
		},
		Facilities: "arraySort(groupUniqArrayArray(facility_ids))",
	},
	"device_presence_per_day": {
		Name: "device_presence_per_day", Time: "day", DayGranularity: true,
		Columns: map[string]string{"facility_id": "facility_id", "device_id": "device_id", "tac": "tac"},
		Count:   "sum(events)", First: "min(first_seen)", Last: "max(last_seen)",
	},
	"detections_per_minute": {
		Name: "detections_per_minute", Time: "minute",
		Columns: map[string]string{"facility_id": "facility_id", "kind": "kind"},
		Count:   "sum(events)", First: "min(minute)", Last: "max(minute) + INTERVAL 59 SECOND",
		Distinct: map[string]string{"device_id": "uniqMerge(devices)"},
	},
}

func init() {
	cols := map[string]string{}
	for name, f := range Fields {
		cols[name] = f.Column
	}
	Sources["detections"].Columns = cols
	for _, src := range Sources {
		if col, ok := src.Columns["facility_id"]; ok && src.Facilities == "" {
			src.Facilities = "arraySort(groupUniqArray(toString(" + col + ")))"
		}
		if src.DayGranularity && src.Count == "sum(events)" {
			src.CountByDay = "sumMap([" + src.Time + "], [toUInt64(events)])"
		}
	}
}
