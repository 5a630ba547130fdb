package event

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/valyala/fastjson"
)

// This file is the one parser of the contract's hot path: the enriched events that the writer
// and the correlator read and the raw events the enricher reads, several times faster than
// encoding/json: one reusable parser, no reflection, a fast path for the contract's timestamp
// layout, and repeated strings (facility names, models, bands) interned instead of allocated
// each time. It accepts what encoding/json accepts for Enriched, field by field (a test and
// FuzzDecodeEnriched hold it to that), except that keys match exactly rather than
// case-insensitively. Errors name the field ("drone.lat: ...").

// Decoder decodes raw and enriched events; it is not safe for concurrent use (one per
// partition or goroutine; DecodeRaw and DecodeEnriched pool them). The strings it returns are
// owned copies (repeated ones shared): nothing points into the message or the parser, except
// with RawView.
type Decoder struct {
	p      fastjson.Parser
	intern map[string]string
	err    error
	// raw and en are the targets of the decode in progress; en is nil while decoding a Raw.
	raw   *Raw
	en    *Enrichment
	visit func(k []byte, v *fastjson.Value)

	// view is set during RawView: strings point into the parser and numbers into the slabs
	// below, all valid until the next call.
	view       bool
	floats     [8]float64
	ints       [4]int64
	bools      [2]bool
	nf, ni, nb int
}

// maxInterned bounds the interning table; it is emptied when full.
const maxInterned = 1 << 16

// NewDecoder returns a decoder.
func NewDecoder() *Decoder {
	d := &Decoder{intern: make(map[string]string, 1024)}
	d.visit = d.visitField // bound once: no closure per message
	return d
}

// Enriched fills e, which it first resets, from data. It checks the JSON and the type of
// each field, not the schema's required fields and ranges (the writer reports those as
// schema_invalid, apart from undecodable messages).
func (d *Decoder) Enriched(data []byte, e *Enriched) error {
	*e = Enriched{}
	return d.decode(data, &e.Raw, &e.Enrichment)
}

// Raw fills r, which it first resets, from data (on error, with what it read before the bad
// field), and checks the fields the raw schema requires (event_id, sensor_id, observed_at,
// kind, received_at): a message without them is not a raw event. Fields it does not know are
// ignored, except the enrichment fields (ErrEnrichedInput): an enriched event is not a raw
// one.
func (d *Decoder) Raw(data []byte, r *Raw) error {
	*r = Raw{}
	if err := d.decode(data, r, nil); err != nil {
		return err
	}
	return r.checkRequired()
}

// RawView is Raw without copies, for code that decodes, transforms and encodes a raw event
// in one go (the enricher): r's strings and number pointers point into d and are valid only
// until d's next call. Nothing of r may be kept beyond that.
func (d *Decoder) RawView(data []byte, r *Raw) error {
	d.view, d.nf, d.ni, d.nb = true, 0, 0, 0
	err := d.Raw(data, r)
	d.view = false
	return err
}

func (d *Decoder) decode(data []byte, r *Raw, en *Enrichment) error {
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	d.err, d.raw, d.en = nil, r, en
	o.Visit(d.visit)
	d.raw, d.en = nil, nil // keep nothing of the caller's
	return d.err
}

func (d *Decoder) visitField(k []byte, v *fastjson.Value) {
	if d.err != nil || v.Type() == fastjson.TypeNull {
		return
	}
	// The key's bytes live in the parser until the next message: compared and formatted
	// into errors (a copy), never kept, so no copy is made here.
	key := unsafe.String(unsafe.SliceData(k), len(k))
	if d.rawField(key, v, d.raw) {
		return
	}
	switch {
	case d.en != nil:
		d.enrichmentField(key, v, d.en)
	case isEnrichmentKey(key):
		d.fail(key, ErrEnrichedInput)
	}
	// Unknown fields are ignored, as encoding/json does: a newer producer may add some.
}

// decoders pools decoders for DecodeRaw and DecodeEnriched.
var decoders = sync.Pool{New: func() any { return NewDecoder() }}

// DecodeRaw decodes a raw event (detections.raw.v1) with a pooled Decoder; see Decoder.Raw.
// Safe for concurrent use.
func DecodeRaw(data []byte, r *Raw) error {
	d := decoders.Get().(*Decoder)
	err := d.Raw(data, r)
	decoders.Put(d)
	return err
}

// DecodeEnriched decodes an enriched event (detections.enriched.v1) with a pooled Decoder;
// see Decoder.Enriched. Safe for concurrent use; a consumer of many events keeps its own
// Decoder (NewDecoder) instead.
func DecodeEnriched(data []byte, e *Enriched) error {
	d := decoders.Get().(*Decoder)
	err := d.Enriched(data, e)
	decoders.Put(d)
	return err
}

// ErrMissingField means a document lacks a field its schema requires.
var ErrMissingField = errors.New("required field missing")

// ErrEnrichedInput means a raw event carries enrichment fields (device_key, facility_id, …):
// an enriched event sent to the raw topic.
var ErrEnrichedInput = errors.New("raw event already carries enrichment fields (device_key, facility_id, ...)")

func (r *Raw) checkRequired() error {
	switch {
	case r.EventID == "":
		return fmt.Errorf("event_id: %w", ErrMissingField)
	case r.SensorID == "":
		return fmt.Errorf("sensor_id: %w", ErrMissingField)
	case r.ObservedAt.IsZero():
		return fmt.Errorf("observed_at: %w", ErrMissingField)
	case r.Kind == "":
		return fmt.Errorf("kind: %w", ErrMissingField)
	case r.ReceivedAt.IsZero():
		return fmt.Errorf("received_at: %w", ErrMissingField)
	}
	return nil
}

// rawField decodes one field of a raw event into e and reports whether k is one.
func (d *Decoder) rawField(k string, v *fastjson.Value, e *Raw) bool {
	switch k {
	// Common.
	case "event_id":
		e.EventID = d.str(k, v, false)
	case "sensor_id":
		e.SensorID = d.str(k, v, true)
	case "observed_at":
		e.ObservedAt = d.time(k, v)
	case "kind":
		e.Kind = Kind(d.str(k, v, true))
	case "zone":
		e.Zone = d.str(k, v, true)
	case "cell":
		e.Cell = d.str(k, v, true)
	case "rat":
		e.RAT = RAT(d.str(k, v, true))
	case "band":
		e.Band = d.str(k, v, true)
	case "freq_mhz":
		e.FreqMHz = d.float(k, v)
	case "rssi_dbm":
		e.RSSIdBm = d.float(k, v)
	case "outcome":
		e.Outcome = Outcome(d.str(k, v, true))
	case "duration_ms":
		e.DurationMs = d.int(k, v)
	case "data_bytes":
		e.DataBytes = d.int(k, v)
	case "bandwidth_khz":
		e.BandwidthKHz = d.float(k, v)
	case "drone":
		e.Drone = d.drone(v)
	case "jammer":
		e.Jammer = d.jammer(v)
	case "seizure":
		e.Seizure = d.seizure(v)
	// Pseudonyms.
	case "key_version":
		e.KeyVersion = d.str(k, v, true)
	case "imei_pseudo":
		e.IMEIPseudo = d.str(k, v, false)
	case "tac":
		e.TAC = d.str(k, v, true)
	case "serial_block":
		e.SerialBlock = d.str(k, v, true)
	case "imei_serial_prefix":
		// Events written before serial-block ids kept 3 serial digits here: dropped.
	case "device_route":
		e.DeviceRoute = d.str(k, v, true)
	case "imei_check_ok":
		e.IMEICheckOK = d.bool(k, v)
	case "imsi_pseudo":
		e.IMSIPseudo = d.str(k, v, false)
	case "mcc":
		e.MCC = d.str(k, v, true)
	case "mnc":
		e.MNC = d.str(k, v, true)
	case "msisdn_pseudo":
		e.MSISDNPseudo = d.str(k, v, false)
	// Raw.
	case "received_at":
		e.ReceivedAt = d.time(k, v)
	default:
		return false
	}
	return true
}

// enrichmentField decodes one enrichment field into e; it ignores other keys.
func (d *Decoder) enrichmentField(k string, v *fastjson.Value, e *Enrichment) {
	switch k {
	case "device_key":
		e.DeviceKey = d.str(k, v, false)
	case "enriched_at":
		e.EnrichedAt = d.time(k, v)
	case "facility_id":
		e.FacilityID = d.str(k, v, true)
	case "facility_name":
		e.FacilityName = d.str(k, v, true)
	case "facility_type":
		e.FacilityType = d.str(k, v, true)
	case "disp":
		e.DISP = d.str(k, v, true)
	case "region_code":
		e.RegionCode = d.str(k, v, true)
	case "department_code":
		e.DepartmentCode = d.str(k, v, true)
	case "department_name":
		e.DepartmentName = d.str(k, v, true)
	case "facility_lat":
		e.FacilityLat = d.float(k, v)
	case "facility_lon":
		e.FacilityLon = d.float(k, v)
	case "building":
		e.Building = d.str(k, v, true)
	case "zone_type":
		e.ZoneType = d.str(k, v, true)
	case "sensor_type":
		e.SensorType = d.str(k, v, true)
	case "vendor":
		e.Vendor = d.str(k, v, true)
	case "manufacturer":
		e.Manufacturer = d.str(k, v, true)
	case "model":
		e.Model = d.str(k, v, true)
	case "mini_phone":
		e.MiniPhone = d.bool(k, v)
	case "operator":
		e.Operator = d.str(k, v, true)
	case "brand":
		e.Brand = d.str(k, v, true)
	case "country":
		e.Country = d.str(k, v, true)
	}
}
