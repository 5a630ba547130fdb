package event

import (
	"errors"
	"fmt"
	"sync"
	"time"
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
	case "imei_serial_prefix":
		e.IMEISerialPrefix = d.str(k, v, true)
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

func (d *Decoder) drone(v *fastjson.Value) *Drone {
	o := d.object("drone", v)
	if o == nil {
		return nil
	}
	var dr Drone
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "detection_source":
			dr.DetectionSource = d.str("drone.detection_source", v, true)
		case "lat":
			dr.Lat = deref(d.float("drone.lat", v))
		case "lon":
			dr.Lon = deref(d.float("drone.lon", v))
		case "alt_m":
			dr.AltM = d.float("drone.alt_m", v)
		case "height_m":
			dr.HeightM = d.float("drone.height_m", v)
		case "speed_mps":
			dr.SpeedMps = d.float("drone.speed_mps", v)
		case "vertical_speed_mps":
			dr.VerticalSpeedMps = d.float("drone.vertical_speed_mps", v)
		case "heading_deg":
			dr.HeadingDeg = d.float("drone.heading_deg", v)
		case "remote_id":
			dr.RemoteID = d.remoteID(v)
		}
	})
	return &dr
}

func (d *Decoder) remoteID(v *fastjson.Value) *RemoteID {
	o := d.object("drone.remote_id", v)
	if o == nil {
		return nil
	}
	var r RemoteID
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "uas_id":
			r.UASID = d.str("drone.remote_id.uas_id", v, true)
		case "uas_id_type":
			r.UASIDType = d.str("drone.remote_id.uas_id_type", v, true)
		case "ua_type":
			r.UAType = d.str("drone.remote_id.ua_type", v, true)
		case "operational_status":
			r.OperationalStatus = d.str("drone.remote_id.operational_status", v, true)
		case "operator_id":
			r.OperatorID = d.str("drone.remote_id.operator_id", v, true)
		case "operator_lat":
			r.OperatorLat = d.float("drone.remote_id.operator_lat", v)
		case "operator_lon":
			r.OperatorLon = d.float("drone.remote_id.operator_lon", v)
		case "operator_alt_m":
			r.OperatorAltM = d.float("drone.remote_id.operator_alt_m", v)
		case "operator_location_type":
			r.OperatorLocationType = d.str("drone.remote_id.operator_location_type", v, true)
		}
	})
	return &r
}

func (d *Decoder) jammer(v *fastjson.Value) *Jammer {
	o := d.object("jammer", v)
	if o == nil {
		return nil
	}
	var j Jammer
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "jammer_id":
			j.JammerID = d.str("jammer.jammer_id", v, true)
		case "alarm":
			j.Alarm = d.str("jammer.alarm", v, true)
		case "severity":
			j.Severity = d.str("jammer.severity", v, true)
		case "bands":
			arr, err := v.Array()
			if err != nil {
				d.fail("jammer.bands", err)
				return
			}
			j.Bands = make([]string, 0, len(arr))
			for _, b := range arr {
				if b.Type() == fastjson.TypeNull {
					j.Bands = append(j.Bands, "") // as encoding/json does
					continue
				}
				j.Bands = append(j.Bands, d.str("jammer.bands[]", b, true))
			}
		}
	})
	return &j
}

func (d *Decoder) seizure(v *fastjson.Value) *Seizure {
	o := d.object("seizure", v)
	if o == nil {
		return nil
	}
	var s Seizure
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "phones":
			s.Phones = deref(d.int("seizure.phones", v))
		case "mini_phones":
			s.MiniPhones = deref(d.int("seizure.mini_phones", v))
		case "sims":
			s.SIMs = deref(d.int("seizure.sims", v))
		case "accessories":
			s.Accessories = d.int("seizure.accessories", v)
		case "search_id":
			s.SearchID = d.str("seizure.search_id", v, true)
		case "found_by":
			s.FoundBy = d.str("seizure.found_by", v, true)
		}
	})
	return &s
}

func (d *Decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", field, err)
	}
}

func (d *Decoder) object(field string, v *fastjson.Value) *fastjson.Object {
	o, err := v.Object()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	return o
}

// str returns v's string; repeated values (intern) share one allocation.
func (d *Decoder) str(field string, v *fastjson.Value, intern bool) string {
	b, err := v.StringBytes()
	if err != nil {
		d.fail(field, err)
		return ""
	}
	switch {
	case d.view:
		return unsafe.String(unsafe.SliceData(b), len(b))
	case !intern:
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

func (d *Decoder) float(field string, v *fastjson.Value) *float64 {
	f, err := v.Float64()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.nf < len(d.floats) {
		d.floats[d.nf] = f
		d.nf++
		return &d.floats[d.nf-1]
	}
	return &f
}

func (d *Decoder) int(field string, v *fastjson.Value) *int64 {
	if v.Type() != fastjson.TypeNumber {
		d.fail(field, errors.New("not a number"))
		return nil
	}
	i, err := v.Int64()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.ni < len(d.ints) {
		d.ints[d.ni] = i
		d.ni++
		return &d.ints[d.ni-1]
	}
	return &i
}

func (d *Decoder) bool(field string, v *fastjson.Value) *bool {
	b, err := v.Bool()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.nb < len(d.bools) {
		d.bools[d.nb] = b
		d.nb++
		return &d.bools[d.nb-1]
	}
	return &b
}

func (d *Decoder) time(field string, v *fastjson.Value) Time {
	b, err := v.StringBytes()
	if err != nil {
		d.fail(field, err)
		return Time{}
	}
	t, err := parseTime(b)
	if err != nil {
		d.fail(field, err)
	}
	return Time{Time: t}
}

// parseTime reads the contract's layout (2006-01-02T15:04:05.000Z) without time.Parse,
// and any other RFC 3339 timestamp with it, as Time does.
func parseTime(b []byte) (time.Time, error) {
	if len(b) == len(TimeLayout) && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' &&
		b[16] == ':' && b[19] == '.' && b[23] == 'Z' {
		year, ok1 := digits(b[0:4])
		month, ok2 := digits(b[5:7])
		day, ok3 := digits(b[8:10])
		hour, ok4 := digits(b[11:13])
		minute, ok5 := digits(b[14:16])
		sec, ok6 := digits(b[17:19])
		ms, ok7 := digits(b[20:23])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && month >= 1 && month <= 12 && day >= 1 &&
			day <= daysIn(month, year) && hour < 24 && minute < 60 && sec < 60 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timestamp: %w", err)
	}
	return t.UTC(), nil
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// isEnrichmentKey reports whether k is a field of Enrichment, which a raw event does not have.
func isEnrichmentKey(k string) bool {
	switch k {
	case "device_key", "enriched_at", "facility_id", "facility_name", "facility_type", "disp", "region_code",
		"department_code", "department_name", "facility_lat", "facility_lon", "building", "zone_type",
		"sensor_type", "vendor", "manufacturer", "model", "mini_phone", "operator", "brand", "country":
		return true
	}
	return false
}
