// Package reference loads Vigie's reference data — facilities, sensors, phone models by TAC
// and mobile operators by MCC/MNC — from CSV files into an immutable snapshot with fast
// lookups. The enricher joins detections with it, the simulator generates its sensors from
// it and the correlator reads facility coordinates from it.
//
// The file formats are documented in schemas/reference/README.md; the default copy of the
// files ships embedded in the Go package github.com/vigie/vigie/schemas/reference. A
// Snapshot is never modified after Load returns, so it can be shared between goroutines
// and swapped atomically on reload.
package reference

import "github.com/vigie/vigie/pkg/event"

// File names of the four reference files inside a reference directory.
const (
	FacilitiesFile = "facilities.csv"
	SensorsFile    = "sensors.csv"
	TACFile        = "tac.csv"
	OperatorsFile  = "mcc_mnc.csv"
)

// Files lists the reference files in load order: sensors refer to facilities.
var Files = []string{FacilitiesFile, SensorsFile, TACFile, OperatorsFile}

// Facility is one prison establishment. Lat and Lon are approximate (commune coordinates in
// the default data) and valid only when HasCoords is true. Capacity is 0 and SecurityLevel
// empty when unknown.
type Facility struct {
	ID             string
	Name           string
	TypeCode       string
	TypeLabel      string
	City           string
	DepartmentCode string
	DepartmentName string
	// DISP is the interregional directorate of prison services the facility belongs to;
	// the enricher reports it as the event's region.
	DISP          string
	RegionCode    string
	Lat, Lon      float64
	HasCoords     bool
	Capacity      int
	SecurityLevel string
}

// ZoneType is the kind of area a sensor covers.
type ZoneType string

// Zone types of a sensor.
const (
	ZoneCellBlock    ZoneType = "cell_block"
	ZoneYard         ZoneType = "yard"
	ZoneVisitingRoom ZoneType = "visiting_room"
	ZonePerimeter    ZoneType = "perimeter"
	ZoneWorkshop     ZoneType = "workshop"
)

// ZoneTypes lists every valid zone type.
var ZoneTypes = []ZoneType{ZoneCellBlock, ZoneYard, ZoneVisitingRoom, ZonePerimeter, ZoneWorkshop}

// SensorType is the kind of detector, which decides the kinds of events it reports.
type SensorType string

// Sensor types and the event kinds they report.
const (
	// SensorMAS is a managed access system cell: mas_attach, call_attempt, sms_attempt,
	// data_attempt, with IMEI and IMSI.
	SensorMAS SensorType = "mas"
	// SensorRF is a fixed RF detector: rf_burst, without identifiers.
	SensorRF SensorType = "rf_detector"
	// SensorDrone is a drone detector (Remote ID receiver, radar): drone_seen.
	SensorDrone SensorType = "drone_detector"
	// SensorJammer is a jammer reporting jammer_alarm.
	SensorJammer SensorType = "jammer"
	// SensorSearchReport is the terminal on which staff record cell searches: item_seized.
	SensorSearchReport SensorType = "search_report"
	// SensorOther is any other detector.
	SensorOther SensorType = "other"
)

// SensorTypes lists every valid sensor type.
var SensorTypes = []SensorType{SensorMAS, SensorRF, SensorDrone, SensorJammer, SensorSearchReport, SensorOther}

// kindsOf are the event kinds each sensor type reports: what the detector can observe
// (DOMAIN.md, "Sensors and what they record"). Only a managed access system sees IMEIs and
// IMSIs; another detector's credential posting them is refused (ingest:
// kind_not_allowed_for_sensor).
var kindsOf = map[SensorType][]event.Kind{
	SensorMAS:          {event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt},
	SensorRF:           {event.KindRFBurst},
	SensorDrone:        {event.KindDroneSeen},
	SensorJammer:       {event.KindJammerAlarm},
	SensorSearchReport: {event.KindItemSeized},
	// A handheld RF detector or a junction detector: it sees that a phone transmits.
	SensorOther: {event.KindRFBurst},
}

// Kinds returns the event kinds a sensor of type t may report (none for an unknown type).
func (t SensorType) Kinds() []event.Kind { return kindsOf[t] }

// Sensor is one detector installed in a facility. X and Y are metres east and north of the
// facility's reference point; Floor is 0 for the ground floor.
type Sensor struct {
	ID         string
	FacilityID string
	Building   string
	Floor      int
	ZoneType   ZoneType
	// Zone names the area within the facility (e.g. "B-2" for building B, floor 2), the
	// unit in which searches and presence are reasoned about.
	Zone   string
	X, Y   float64
	Type   SensorType
	Vendor string
	// Facility is the facility the sensor belongs to, resolved at load.
	Facility *Facility
}

// Model is a phone model identified by its type allocation code (first 8 IMEI digits).
type Model struct {
	TAC          string
	Manufacturer string
	Model        string
	// Mini is true for the tiny "undetectable" phones sold for smuggling into prisons.
	Mini bool

	line int // where it was defined, for duplicate errors
}

// Operator is a mobile network identified by MCC and MNC.
type Operator struct {
	MCC        string
	MNC        string
	CountryISO string
	Country    string
	Brand      string
	Name       string
	Status     string
}

// DisplayName is the brand when known, else the operator name.
func (o *Operator) DisplayName() string {
	if o.Brand != "" {
		return o.Brand
	}
	return o.Name
}
