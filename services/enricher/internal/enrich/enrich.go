// Package enrich turns a raw event (detections.raw.v1) into an enriched one
// (detections.enriched.v1) with one reference snapshot: facility, zone, region (DISP),
// phone model and operator. It is pure: no I/O, no clock of its own, safe for concurrent
// use with any snapshot.
package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
)

// Service is the name the enricher writes in its dead-letter records.
const Service = "enricher"

// Outcome says where a message goes.
type Outcome uint8

// Outcomes of Enrich.
const (
	// Enriched: Value is an event.Enriched for detections.enriched.v1, keyed by Key.
	Enriched Outcome = iota
	// UnknownSensor: the sensor is not in the reference data; Value is an event.DLQ with
	// reason unknown_sensor for detections.dlq.v1, keyed by the sensor id.
	UnknownSensor
	// Undecodable: the message is not a raw event v1; Value is an event.DLQ with reason
	// decode_failed.
	Undecodable
)

// Result is the message Enrich produces for one raw message.
type Result struct {
	Outcome Outcome
	Key     []byte
	Value   []byte
	// TACUnknown and OperatorUnknown are set when the event has a TAC (MCC/MNC) that the
	// reference does not know: normal (most mini phones have no public TAC), but counted.
	TACUnknown      bool
	OperatorUnknown bool
}

// ErrMissingField means a raw event lacks a field the enricher needs.
var ErrMissingField = errors.New("required field missing")

// Table is a reference snapshot compiled for enrichment: for each sensor, the JSON of the
// enrichment fields it decides (facility, region, zone, sensor), built once per snapshot so
// that enriching an event is a decode, three lookups and a copy. Immutable.
type Table struct {
	snap    *reference.Snapshot
	sensors map[string]*sensorEntry
}

type sensorEntry struct {
	sensor *reference.Sensor
	// fields is `,"facility_id":…,"vendor":"…"`; zone is `,"zone":"…"`, added when the
	// event does not name its zone.
	fields []byte
	zone   []byte
}

// Compile prepares snap for Enrich. It takes a few milliseconds per 10,000 sensors and is
// meant to run once per reference version, off the event path.
func Compile(snap *reference.Snapshot) *Table {
	t := &Table{snap: snap, sensors: map[string]*sensorEntry{}}
	for _, s := range snap.Sensors() {
		f := s.Facility
		var b []byte
		b = appendField(b, "facility_id", f.ID)
		b = appendField(b, "facility_name", f.Name)
		b = appendField(b, "facility_type", f.TypeCode)
		b = appendField(b, "disp", f.DISP)
		b = appendField(b, "region_code", f.RegionCode)
		b = appendField(b, "department_code", f.DepartmentCode)
		b = appendField(b, "department_name", f.DepartmentName)
		if f.HasCoords {
			b = append(b, `,"facility_lat":`...)
			b = strconv.AppendFloat(b, f.Lat, 'f', -1, 64)
			b = append(b, `,"facility_lon":`...)
			b = strconv.AppendFloat(b, f.Lon, 'f', -1, 64)
		}
		b = appendField(b, "building", s.Building)
		b = appendField(b, "zone_type", string(s.ZoneType))
		b = appendField(b, "sensor_type", string(s.Type))
		b = appendField(b, "vendor", s.Vendor)
		t.sensors[s.ID] = &sensorEntry{sensor: s, fields: b, zone: appendField(nil, "zone", s.Zone)}
	}
	return t
}

// Snapshot is the reference snapshot the table was compiled from.
func (t *Table) Snapshot() *reference.Snapshot { return t.snap }

// Enrich joins one raw message with t. src is where the message came from, recorded in
// dead-letter records; now is the enrichment time.
//
// The raw message is decoded in full (so a message that is not a raw event v1 is refused),
// and the enriched message is the raw message's own bytes with the enrichment fields
// appended: every raw field reaches the enriched event exactly as ingest wrote it.
func Enrich(t *Table, msg []byte, src event.Source, now event.Time) Result {
	// Decoding into Enriched rather than Raw finds enrichment fields a raw message must not
	// carry: appending ours would make a JSON object with duplicate keys.
	var ev event.Enriched
	raw := &ev.Raw
	if err := decode(msg, &ev); err != nil {
		return deadLetter(Undecodable, event.ReasonDecodeFailed, err, raw, msg, src, now)
	}
	if ev.Enrichment != (event.Enrichment{}) {
		err := errors.New("raw event already carries enrichment fields (device_key, facility_id, ...)")
		return deadLetter(Undecodable, event.ReasonDecodeFailed, err, raw, msg, src, now)
	}
	end := bytes.LastIndexByte(msg, '}')
	entry, ok := t.sensors[raw.SensorID]
	if !ok {
		err := fmt.Errorf("sensor %q is not in the reference data (version %s)", raw.SensorID, t.snap.Version())
		return deadLetter(UnknownSensor, event.ReasonUnknownSensor, err, raw, msg, src, now)
	}
	res := Result{Outcome: Enriched}
	key := raw.DeviceKey()

	out := make([]byte, 0, end+len(entry.fields)+len(entry.zone)+320)
	body := msg[:end]
	for len(body) > 0 && isSpace(body[len(body)-1]) {
		body = body[:len(body)-1]
	}
	out = append(out, body...)
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"device_key":`...)
	out = appendString(out, key)
	out = append(out, `,"enriched_at":"`...)
	out = now.UTC().AppendFormat(out, event.TimeLayout)
	out = append(out, '"')
	out = append(out, entry.fields...)
	if raw.Zone == "" {
		// A sensor covers one zone; an event that names its own (a search report) keeps it.
		out = append(out, entry.zone...)
	}
	if raw.TAC != "" {
		if m, ok := t.snap.Model(raw.TAC); ok {
			out = appendField(out, "manufacturer", m.Manufacturer)
			out = appendField(out, "model", m.Model)
			out = append(out, `,"mini_phone":`...)
			out = strconv.AppendBool(out, m.Mini)
		} else {
			res.TACUnknown = true
		}
	}
	if raw.MCC != "" && raw.MNC != "" {
		if o, ok := t.snap.Operator(raw.MCC, raw.MNC); ok {
			out = appendField(out, "operator", o.Name)
			out = appendField(out, "brand", o.Brand)
			out = appendField(out, "country", o.CountryISO)
		} else {
			res.OperatorUnknown = true
		}
	}
	out = append(out, '}')
	res.Key = []byte(key)
	res.Value = out
	return res
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// appendField appends `,"name":"value"`, or nothing when value is empty: the contract says
// an unknown enrichment field is absent, never an empty string.
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendString appends s as a JSON string, escaped as encoding/json does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func decode(msg []byte, ev *event.Enriched) error {
	raw := &ev.Raw
	// segmentio/encoding decodes the same JSON into the same types as encoding/json (it
	// honours the contract's UnmarshalJSON methods), several times faster. Zero-copy: the
	// decoded strings point into msg, which outlives them (nothing decoded is kept after
	// Enrich returns). Field names match exactly, as the contract spells them.
	rest, err := segjson.Parse(msg, ev, segjson.ZeroCopy|segjson.DontMatchCaseInsensitiveStructFields)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("unexpected data after the JSON object at byte %d", len(msg)-len(rest))
	}
	if err != nil {
		return fmt.Errorf("decode raw event: %w", err)
	}
	switch {
	case raw.EventID == "":
		return fmt.Errorf("event_id: %w", ErrMissingField)
	case raw.SensorID == "":
		return fmt.Errorf("sensor_id: %w", ErrMissingField)
	case raw.Kind == "":
		return fmt.Errorf("kind: %w", ErrMissingField)
	case raw.ObservedAt.IsZero():
		return fmt.Errorf("observed_at: %w", ErrMissingField)
	}
	return nil
}

// digitRuns matches runs of 6 or more digits, separators allowed: what could be an IMEI,
// IMSI or phone number in a message that is not the raw event it should be.
var digitRuns = regexp.MustCompile(`[0-9](?:[ .()/-]?[0-9]){5,}`)

const maxPayloadText = 2048

func deadLetter(o Outcome, reason string, cause error, raw *event.Raw, msg []byte, src event.Source, now event.Time) Result {
	rec := event.DLQ{
		Reason:     reason,
		Service:    Service,
		Error:      cause.Error(),
		FailedAt:   now,
		SensorID:   truncate(raw.SensorID, 64),
		EventID:    truncate(raw.EventID, 64),
		Source:     &src,
		KeyVersion: raw.KeyVersion,
	}
	if o == UnknownSensor {
		// A raw event holds pseudonyms only (ingest guarantees it): kept whole so that it
		// can be replayed once the sensor is registered.
		rec.Payload = json.RawMessage(msg)
	} else {
		// Not a raw event: nothing says what it holds, so keep a redacted excerpt only.
		text := msg
		if len(text) > maxPayloadText {
			text = text[:maxPayloadText]
		}
		rec.PayloadText = digitRuns.ReplaceAllString(string([]rune(string(text))), "[redacted]")
		rec.Error = digitRuns.ReplaceAllString(rec.Error, "[redacted]")
		if rec.KeyVersion != "" && !keyVersion.MatchString(rec.KeyVersion) {
			rec.KeyVersion = ""
		}
		rec.SensorID = digitRuns.ReplaceAllString(rec.SensorID, "[redacted]")
		rec.EventID = digitRuns.ReplaceAllString(rec.EventID, "[redacted]")
	}
	value, err := json.Marshal(&rec)
	if err != nil {
		// RawMessage that is not valid JSON cannot happen for UnknownSensor (it decoded);
		// fall back to the text form anyway.
		rec.Payload = nil
		rec.PayloadText = digitRuns.ReplaceAllString(string(msg[:min(len(msg), maxPayloadText)]), "[redacted]")
		value, _ = json.Marshal(&rec)
	}
	return Result{Outcome: o, Key: []byte(rec.SensorID), Value: value}
}

var keyVersion = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
