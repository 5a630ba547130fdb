// Package enrich turns a raw event (detections.raw.v1) into an enriched one
// (detections.enriched.v1) with one reference snapshot: facility, zone, region (DISP),
// phone model and operator. It is pure: no I/O, no clock of its own, safe for concurrent
// use with any snapshot.
package enrich

import (
	"fmt"
	"sync"

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
	// Route is the device's route (event Raw.DeviceRoute), empty for events without a
	// phone: the message goes to partition route mod N (pkg/kafka RouteHeader).
	Route []byte
	// TACUnknown and OperatorUnknown are set when the event has a TAC (MCC/MNC) that the
	// reference does not know: normal (most mini phones have no public TAC), but counted.
	TACUnknown      bool
	OperatorUnknown bool
}

// ErrMissingField means a raw event lacks a field the enricher needs.
var ErrMissingField = event.ErrMissingField

// Table is a reference snapshot compiled for enrichment: for each sensor, the enrichment
// fields it decides (facility, region, zone, sensor), built once per snapshot so that
// enriching an event is a decode, three lookups and an encode. Immutable.
type Table struct {
	snap    *reference.Snapshot
	sensors map[string]*sensorEntry
}

type sensorEntry struct {
	sensor *reference.Sensor
	// fields holds the facility and sensor fields; zone is the sensor's zone, set when the
	// event does not name its own.
	fields event.Enrichment
	zone   string
}

// Compile prepares snap for Enrich. It takes a few milliseconds per 10,000 sensors and is
// meant to run once per reference version, off the event path.
func Compile(snap *reference.Snapshot) *Table {
	t := &Table{snap: snap, sensors: map[string]*sensorEntry{}}
	for _, s := range snap.Sensors() {
		f := s.Facility
		e := event.Enrichment{
			FacilityID: f.ID, FacilityName: f.Name, FacilityType: f.TypeCode, DISP: f.DISP,
			RegionCode: f.RegionCode, DepartmentCode: f.DepartmentCode, DepartmentName: f.DepartmentName,
			Building: s.Building, ZoneType: string(s.ZoneType), SensorType: string(s.Type), Vendor: s.Vendor,
		}
		if f.HasCoords {
			lat, lon := f.Lat, f.Lon
			e.FacilityLat, e.FacilityLon = &lat, &lon
		}
		t.sensors[s.ID] = &sensorEntry{sensor: s, fields: e, zone: s.Zone}
	}
	return t
}

// Snapshot is the reference snapshot the table was compiled from.
func (t *Table) Snapshot() *reference.Snapshot { return t.snap }

// Enrich joins one raw message with t. src is where the message came from, recorded in
// dead-letter records; now is the enrichment time.
//
// The raw message is decoded in full with pkg/event's codec (a message that is not a raw
// event v1 is refused) and the enriched event is encoded with it: fields a raw event does
// not have (enrichment fields included) are not carried over.
func Enrich(t *Table, msg []byte, src event.Source, now event.Time) Result {
	// The raw event is a view into a pooled decoder (no copies): it is enriched and encoded,
	// or dead-lettered, before the scratch goes back to the pool; nothing of it is kept.
	s := scratches.Get().(*scratch)
	defer scratches.Put(s)
	ev := &s.ev
	raw := &ev.Raw
	if err := s.dec.RawView(msg, raw); err != nil {
		return deadLetter(Undecodable, event.ReasonDecodeFailed, fmt.Errorf("decode raw event: %w", err), raw, msg, src, now)
	}
	entry, ok := t.sensors[raw.SensorID]
	if !ok {
		err := fmt.Errorf("sensor %q is not in the reference data (version %s)", raw.SensorID, t.snap.Version())
		return deadLetter(UnknownSensor, event.ReasonUnknownSensor, err, raw, msg, src, now)
	}
	res := Result{Outcome: Enriched}
	ev.Enrichment = entry.fields
	ev.Enrichment.DeviceKey = raw.DeviceKey()
	ev.EnrichedAt = now
	if raw.Zone == "" {
		// A sensor covers one zone; an event that names its own (a search report) keeps it.
		raw.Zone = entry.zone
	}
	if raw.TAC != "" {
		if m, ok := t.snap.Model(raw.TAC); ok {
			ev.Manufacturer, ev.Model, ev.MiniPhone = m.Manufacturer, m.Model, boolPtr(m.Mini)
		} else {
			res.TACUnknown = true
		}
	}
	if raw.MCC != "" && raw.MNC != "" {
		if o, ok := t.snap.Operator(raw.MCC, raw.MNC); ok {
			ev.Operator, ev.Brand, ev.Country = o.Name, o.Brand, o.CountryISO
		} else {
			res.OperatorUnknown = true
		}
	}
	// Key, route and value share one allocation.
	key, route := ev.Enrichment.DeviceKey, raw.DeviceRoute
	out := append(append(make([]byte, 0, len(key)+len(route)+len(msg)+512), key...), route...)
	head := len(key) + len(route)
	out, err := event.EncodeEnriched(out, ev)
	if err != nil {
		return deadLetter(Undecodable, event.ReasonEnrichFailed, fmt.Errorf("encode enriched event: %w", err), raw, msg, src, now)
	}
	res.Key, res.Route, res.Value = out[:len(key):len(key)], out[len(key):head:head], out[head:]
	if len(route) == 0 {
		res.Route = nil
	}
	return res
}

// scratch is what one Enrich call works in; concurrent calls take one each from scratches.
type scratch struct {
	dec *event.Decoder
	ev  event.Enriched
}

var scratches = sync.Pool{New: func() any { return &scratch{dec: event.NewDecoder()} }}

// yes and no are what every enriched event's MiniPhone points to (never written through).
var yes, no = true, false

func boolPtr(b bool) *bool {
	if b {
		return &yes
	}
	return &no
}

// deadLetter is the dead-letter record of msg: allow-listed fields (event.EncodeDLQ) and
// the message's Kafka position, never its content. An unknown sensor's raw event stays at
// src on the raw topic, from where it can be replayed once the sensor is registered.
func deadLetter(o Outcome, reason string, cause error, raw *event.Raw, msg []byte, src event.Source, now event.Time) Result {
	rec := event.DLQ{
		Reason:   reason,
		Service:  Service,
		Error:    cause.Error(),
		FailedAt: now,
		SensorID: raw.SensorID,
		EventID:  raw.EventID,
		Source:   &src,
		Body:     &event.Body{Bytes: len(msg)},
	}
	value, _ := event.EncodeDLQ(&rec) // strings and numbers only: it cannot fail
	return Result{Outcome: o, Key: rec.Key(), Value: value}
}
