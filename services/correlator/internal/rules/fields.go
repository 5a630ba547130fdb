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

// Fields is the catalogue of fields rules may use, by name. It is built once, at package
// initialisation, and never changed.
var Fields = catalogue(map[string]Field{
	"event_id":        str(func(e *event.Enriched) string { return e.EventID }, "event_id"),
	"sensor_id":       str(func(e *event.Enriched) string { return e.SensorID }, "sensor_id"),
	"kind":            str(func(e *event.Enriched) string { return string(e.Kind) }, "kind"),
	"zone":            str(func(e *event.Enriched) string { return e.Zone }, "zone"),
	"cell":            str(func(e *event.Enriched) string { return e.Cell }, "cell"),
	"rat":             str(func(e *event.Enriched) string { return string(e.RAT) }, "rat"),
	"band":            str(func(e *event.Enriched) string { return e.Band }, "band"),
	"outcome":         str(func(e *event.Enriched) string { return string(e.Outcome) }, "outcome"),
	"facility_id":     str(func(e *event.Enriched) string { return e.FacilityID }, "facility_id"),
	"facility_type":   str(func(e *event.Enriched) string { return e.FacilityType }, "facility_type"),
	"disp":            str(func(e *event.Enriched) string { return e.DISP }, "disp"),
	"region_code":     str(func(e *event.Enriched) string { return e.RegionCode }, "region_code"),
	"department_code": str(func(e *event.Enriched) string { return e.DepartmentCode }, "department_code"),
	"building":        str(func(e *event.Enriched) string { return e.Building }, "building"),
	"zone_type":       str(func(e *event.Enriched) string { return e.ZoneType }, "zone_type"),
	"sensor_type":     str(func(e *event.Enriched) string { return e.SensorType }, "sensor_type"),
	"vendor":          str(func(e *event.Enriched) string { return e.Vendor }, "vendor"),
	"imei_pseudo":     str(func(e *event.Enriched) string { return e.IMEIPseudo }, "imei_pseudo"),
	"imsi_pseudo":     str(func(e *event.Enriched) string { return e.IMSIPseudo }, "imsi_pseudo"),
	"msisdn_pseudo":   str(func(e *event.Enriched) string { return e.MSISDNPseudo }, "msisdn_pseudo"),
	"tac":             str(func(e *event.Enriched) string { return e.TAC }, "tac"),
	"serial_block":    str(func(e *event.Enriched) string { return e.SerialBlock }, "serial_block"),
	"mcc":             str(func(e *event.Enriched) string { return e.MCC }, "mcc"),
	"mnc":             str(func(e *event.Enriched) string { return e.MNC }, "mnc"),
	"manufacturer":    str(func(e *event.Enriched) string { return e.Manufacturer }, "manufacturer"),
	"model":           str(func(e *event.Enriched) string { return e.Model }, "model"),
	"mini_phone":      str(func(e *event.Enriched) string { return boolString(e.MiniPhone) }, "if(isNull(mini_phone), '', toString(mini_phone))"),
	"operator":        str(func(e *event.Enriched) string { return e.Operator }, "operator"),
	"country":         str(func(e *event.Enriched) string { return e.Country }, "country"),
	"device_key":      str(func(e *event.Enriched) string { return e.Enrichment.DeviceKey }, "device_key"),
	"device_id":       str(deviceID, "device_id"),
	"search_id": str(func(e *event.Enriched) string {
		if e.Seizure == nil {
			return ""
		}
		return e.Seizure.SearchID
	}, "search_id"),
	"seized_total": {Get: seizedTotal, Column: "seized_phones + seized_mini_phones + seized_sims", Numeric: true},
})

// catalogue names each field after its key.
func catalogue(fields map[string]Field) map[string]Field {
	for name, f := range fields {
		f.Name = name
		fields[name] = f
	}
	return fields
}
