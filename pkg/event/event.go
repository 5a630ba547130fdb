// Package event is the Go model of Vigie's event contract v1 (schemas/events) and its one
// codec: the detector event as sensors send it (Detector, used only inside the ingest
// service because it holds clear identifiers), the pseudonymised event on detections.raw.v1
// (Raw), the enriched event on detections.enriched.v1 (Enriched), the dead-letter record on
// detections.dlq.v1 (DLQ) and the correlator's alert on alerts.v1 (Alert).
//
// Each contract on Kafka has one encode and one decode function, and services use nothing
// else to write or read its messages:
//
//	Raw       EncodeRaw / DecodeRaw             raw-event.v1.schema.json
//	Enriched  EncodeEnriched / DecodeEnriched   enriched-event.v1.schema.json
//	DLQ       EncodeDLQ / DecodeDLQ             dlq-record.v1.schema.json
//	Alert     EncodeAlert / DecodeAlert         alert.v1.schema.json
//
// Raw and enriched events are the hot path: they are encoded by reflection-free append
// encoders (Raw.AppendJSON, Enriched.AppendJSON, byte for byte what json.Marshal writes) and
// decoded by one fastjson-based parser, Decoder (NewDecoder; one per partition or goroutine,
// DecodeRaw and DecodeEnriched pool them). Dead letters and alerts are rare and go through
// encoding/json. Decode errors name the field ("drone.lat: ...", "source.partition: ...").
//
// The JSON Schemas are the source of truth; the JSON tags here match them exactly, and the
// tests validate every example of the contract against its schema, round-trip it through
// its codec, and validate the codec's output. The wire format is JSON, one message per event.
package event

import (
	"fmt"
	"time"
)

// Kafka topics of the contract.
const (
	TopicRaw      = "detections.raw.v1"
	TopicEnriched = "detections.enriched.v1"
	TopicDLQ      = "detections.dlq.v1"
	TopicAlerts   = "alerts.v1"
)

// Kind says what a detector observed.
type Kind string

// Kinds of detector events.
const (
	KindMASAttach   Kind = "mas_attach"
	KindCallAttempt Kind = "call_attempt"
	KindSMSAttempt  Kind = "sms_attempt"
	KindDataAttempt Kind = "data_attempt"
	KindRFBurst     Kind = "rf_burst"
	KindDroneSeen   Kind = "drone_seen"
	KindJammerAlarm Kind = "jammer_alarm"
	KindItemSeized  Kind = "item_seized"
)

// Kinds lists every Kind, in the schema's order.
var Kinds = []Kind{KindMASAttach, KindCallAttempt, KindSMSAttempt, KindDataAttempt, KindRFBurst, KindDroneSeen, KindJammerAlarm, KindItemSeized}

// IsAttempt reports whether k is a radio attempt seen by a managed access system.
func (k Kind) IsAttempt() bool {
	switch k {
	case KindMASAttach, KindCallAttempt, KindSMSAttempt, KindDataAttempt:
		return true
	}
	return false
}

// RAT is a radio access technology.
type RAT string

// Radio access technologies.
const (
	RAT2G RAT = "2G"
	RAT3G RAT = "3G"
	RAT4G RAT = "4G"
	RAT5G RAT = "5G"
)

// Outcome is what a managed access system did with an attempt.
type Outcome string

// Outcomes of an attempt.
const (
	OutcomeBlocked          Outcome = "blocked"
	OutcomeAllowed          Outcome = "allowed"
	OutcomeEmergencyAllowed Outcome = "emergency_allowed"
	OutcomeUnknown          Outcome = "unknown"
)

// TimeLayout is the contract's timestamp format: RFC 3339, UTC, exactly milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// The event clock's bounds, the same for every service: Retention is how long detections are
// kept (the TTL of the detections table, schemas/clickhouse 0001, outside a judicial hold),
// so an older event would only be deleted; ClockSkew is how far ahead of the receiving clock
// a sensor's clock may be by default. Ingest refuses events beyond them (its clock_skew and
// retention keys); the correlator's event clocks ignore such times (event_clock.*).
const (
	Retention = 90 * 24 * time.Hour
	ClockSkew = 5 * time.Minute
)

// Time is a timestamp that marshals in TimeLayout (UTC, milliseconds) and unmarshals any
// RFC 3339 timestamp.
type Time struct{ time.Time }

// NewTime returns t truncated to the millisecond, in UTC.
func NewTime(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// String formats t in TimeLayout.
func (t Time) String() string { return t.UTC().Format(TimeLayout) }

// MarshalJSON formats t in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON parses an RFC 3339 timestamp.
func (t *Time) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("timestamp must be an RFC 3339 string, got %.40s", b)
	}
	p, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return fmt.Errorf("parse timestamp: %w", err)
	}
	t.Time = p.UTC()
	return nil
}

// Common holds the fields shared by the detector, raw and enriched events: everything a
// sensor sends except the clear identifiers.
type Common struct {
	EventID    string `json:"event_id"`
	SensorID   string `json:"sensor_id"`
	ObservedAt Time   `json:"observed_at"`
	Kind       Kind   `json:"kind"`
	Zone       string `json:"zone,omitempty"`
	Cell       string `json:"cell,omitempty"`

	RAT          RAT      `json:"rat,omitempty"`
	Band         string   `json:"band,omitempty"`
	FreqMHz      *float64 `json:"freq_mhz,omitempty"`
	RSSIdBm      *float64 `json:"rssi_dbm,omitempty"`
	Outcome      Outcome  `json:"outcome,omitempty"`
	DurationMs   *int64   `json:"duration_ms,omitempty"`
	DataBytes    *int64   `json:"data_bytes,omitempty"`
	BandwidthKHz *float64 `json:"bandwidth_khz,omitempty"`

	Drone   *Drone   `json:"drone,omitempty"`
	Jammer  *Jammer  `json:"jammer,omitempty"`
	Seizure *Seizure `json:"seizure,omitempty"`
}

// Drone is a drone sighting (KindDroneSeen).
type Drone struct {
	DetectionSource  string    `json:"detection_source"`
	Lat              float64   `json:"lat"`
	Lon              float64   `json:"lon"`
	AltM             *float64  `json:"alt_m,omitempty"`
	HeightM          *float64  `json:"height_m,omitempty"`
	SpeedMps         *float64  `json:"speed_mps,omitempty"`
	VerticalSpeedMps *float64  `json:"vertical_speed_mps,omitempty"`
	HeadingDeg       *float64  `json:"heading_deg,omitempty"`
	RemoteID         *RemoteID `json:"remote_id,omitempty"`
}

// RemoteID holds the ASTM F3411 Remote ID fields of a drone broadcast.
type RemoteID struct {
	UASID                string   `json:"uas_id"`
	UASIDType            string   `json:"uas_id_type"`
	UAType               string   `json:"ua_type,omitempty"`
	OperationalStatus    string   `json:"operational_status,omitempty"`
	OperatorID           string   `json:"operator_id,omitempty"`
	OperatorLat          *float64 `json:"operator_lat,omitempty"`
	OperatorLon          *float64 `json:"operator_lon,omitempty"`
	OperatorAltM         *float64 `json:"operator_alt_m,omitempty"`
	OperatorLocationType string   `json:"operator_location_type,omitempty"`
}

// Jammer is a jammer alarm (KindJammerAlarm).
type Jammer struct {
	JammerID string   `json:"jammer_id,omitempty"`
	Alarm    string   `json:"alarm"`
	Severity string   `json:"severity"`
	Bands    []string `json:"bands,omitempty"`
}

// Seizure is what a search found (KindItemSeized). All counts zero: nothing found.
type Seizure struct {
	Phones      int64  `json:"phones"`
	MiniPhones  int64  `json:"mini_phones"`
	SIMs        int64  `json:"sims"`
	Accessories *int64 `json:"accessories,omitempty"`
	SearchID    string `json:"search_id,omitempty"`
	FoundBy     string `json:"found_by,omitempty"`
}

// Detector is a detector event v1 as a sensor sends it. It holds clear personal identifiers:
// it exists only inside the ingest service and is never written anywhere.
type Detector struct {
	Common
	IMEI         string `json:"imei,omitempty"`
	IMSI         string `json:"imsi,omitempty"`
	MSISDNDialed string `json:"msisdn_dialed,omitempty"`
}

// Pseudonyms holds what replaces the clear identifiers on detections.raw.v1.
type Pseudonyms struct {
	KeyVersion   string `json:"key_version,omitempty"`
	IMEIPseudo   string `json:"imei_pseudo,omitempty"`
	TAC          string `json:"tac,omitempty"`
	SerialBlock  string `json:"serial_block,omitempty"`
	IMEICheckOK  *bool  `json:"imei_check_ok,omitempty"`
	IMSIPseudo   string `json:"imsi_pseudo,omitempty"`
	MCC          string `json:"mcc,omitempty"`
	MNC          string `json:"mnc,omitempty"`
	MSISDNPseudo string `json:"msisdn_pseudo,omitempty"`
	// DeviceRoute is the route of the device of DeviceKey (pseudonym.IMEI.Route): the
	// enriched message goes to partition route mod N, the same before and after a key
	// rotation. Empty for events without a phone.
	DeviceRoute string `json:"device_route,omitempty"`
}

// Raw is the event on detections.raw.v1: the detector event with its identifiers replaced
// by pseudonyms, plus the ingest time. Message key: SensorID.
type Raw struct {
	Common
	Pseudonyms
	ReceivedAt Time `json:"received_at"`
}

// DeviceKey is the key of the device that produced the event: the IMEI pseudonym, else the
// IMSI pseudonym, else "sensor:" + sensor id (events without a device, such as drones).
// It is the message key on detections.enriched.v1; DeviceRoute, when set, picks its
// partition (pkg/kafka RouteHeader).
func (r *Raw) DeviceKey() string {
	switch {
	case r.IMEIPseudo != "":
		return r.IMEIPseudo
	case r.IMSIPseudo != "":
		return r.IMSIPseudo
	default:
		return "sensor:" + r.SensorID
	}
}

// Enrichment holds the reference data the enricher adds. A field is empty (and absent from
// the JSON) when the reference does not know it.
type Enrichment struct {
	DeviceKey      string   `json:"device_key"`
	EnrichedAt     Time     `json:"enriched_at"`
	FacilityID     string   `json:"facility_id,omitempty"`
	FacilityName   string   `json:"facility_name,omitempty"`
	FacilityType   string   `json:"facility_type,omitempty"`
	DISP           string   `json:"disp,omitempty"`
	RegionCode     string   `json:"region_code,omitempty"`
	DepartmentCode string   `json:"department_code,omitempty"`
	DepartmentName string   `json:"department_name,omitempty"`
	FacilityLat    *float64 `json:"facility_lat,omitempty"`
	FacilityLon    *float64 `json:"facility_lon,omitempty"`
	Building       string   `json:"building,omitempty"`
	ZoneType       string   `json:"zone_type,omitempty"`
	SensorType     string   `json:"sensor_type,omitempty"`
	Vendor         string   `json:"vendor,omitempty"`
	Manufacturer   string   `json:"manufacturer,omitempty"`
	Model          string   `json:"model,omitempty"`
	MiniPhone      *bool    `json:"mini_phone,omitempty"`
	Operator       string   `json:"operator,omitempty"`
	Brand          string   `json:"brand,omitempty"`
	Country        string   `json:"country,omitempty"`
}

// Enriched is the event on detections.enriched.v1: a Raw event plus Enrichment. Message
// key: DeviceKey.
type Enriched struct {
	Raw
	Enrichment
}

// DLQ reasons. The first are ingest's (refused at the door), then the downstream services'.
const (
	ReasonMalformedJSON             = "malformed_json"
	ReasonSchemaInvalid             = "schema_invalid"
	ReasonSensorMismatch            = "sensor_mismatch"
	ReasonPseudonymiseFailed        = "pseudonymise_failed"
	ReasonInvalidText               = "invalid_text"
	ReasonObservedAtInFuture        = "observed_at_in_future"
	ReasonObservedAtBeyondRetention = "observed_at_beyond_retention"
	ReasonEventIDConflict           = "event_id_conflict"
	ReasonDecodeFailed              = "decode_failed"
	ReasonUnknownSensor             = "unknown_sensor"
	ReasonEnrichFailed              = "enrich_failed"
	ReasonWriteFailed               = "write_failed"
	ReasonRuleFailed                = "rule_failed"
	ReasonOther                     = "other"
)

// DLQ is a dead-letter record on detections.dlq.v1: why a message was not accepted, as an
// allow-list of validated fields (deadletter.go). It never holds the message, nor a redacted
// copy of it: the body is known by its size and a keyed hash (ingest), or by its Kafka
// position (downstream services, whose input topics hold pseudonyms only).
type DLQ struct {
	Reason   string       `json:"reason"`
	Service  string       `json:"service"`
	Error    string       `json:"error"`
	Errors   []FieldError `json:"errors,omitempty"`
	FailedAt Time         `json:"failed_at"`
	SensorID string       `json:"sensor_id,omitempty"`
	EventID  string       `json:"event_id,omitempty"`
	Source   *Source      `json:"source,omitempty"`
	Body     *Body        `json:"body,omitempty"`
	// KeyVersion is the version of the key of Body.HMAC.
	KeyVersion string `json:"key_version,omitempty"`
}

// Body describes the message a dead-letter record is about, without its content.
type Body struct {
	// Bytes is the message's size.
	Bytes int `json:"bytes"`
	// HMAC is a keyed hash of the message (hex): two records with the same HMAC are about
	// the same bytes, and nobody without the key can test a guess of them.
	HMAC string `json:"hmac,omitempty"`
}

// FieldError is one validation error: the JSON pointer of the bad field and why.
type FieldError struct {
	Pointer string `json:"pointer"`
	Reason  string `json:"reason"`
}

// Source is the Kafka position of the message a downstream service dead-lettered.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}
