// Package pipeline turns one event of a request into what ingest writes: for a valid event
// of the authenticated sensor, the pseudonymised raw event (detections.raw.v1); for any other,
// a rejection for the HTTP response and a dead-letter record (detections.dlq.v1) that holds
// no clear identifier.
package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/schemas/events"
	"github.com/vigie/vigie/services/ingest/internal/batch"
)

// Service is the name written in dead-letter records.
const Service = "ingest"

// maxFieldErrors bounds the errors reported for one event.
const maxFieldErrors = 16

// Pipeline validates and pseudonymises events. It is safe for concurrent use.
type Pipeline struct {
	schema  *jsonschema.Schema
	rules   map[int]string
	keys    *pseudonym.Pseudonymizer
	bounds  Bounds
	printer *message.Printer
	// zones, when set, returns the reference data that zones are checked against.
	zones func() *reference.Snapshot
}

// CheckZones makes the pipeline refuse an event whose zone is not a zone of its sensor's
// facility in the reference data ref returns (the current snapshot, reloaded elsewhere), or
// whose sensor the reference does not know: a zone is a place of the reference, never free
// text (invalid_text, reason unknown_zone).
func (p *Pipeline) CheckZones(ref func() *reference.Snapshot) { p.zones = ref }

// zoneProblem returns the field error of d's zone, if it has one the reference refuses.
func (p *Pipeline) zoneProblem(d *event.Detector) []event.FieldError {
	if p.zones == nil || d.Zone == "" {
		return nil
	}
	snap := p.zones()
	if s, ok := snap.Sensor(d.SensorID); ok && snap.HasZone(s.FacilityID, d.Zone) {
		return nil
	}
	return []event.FieldError{{Pointer: "/zone", Reason: ReasonUnknownZone}}
}

// ReasonUnknownZone is the field error of a zone the reference does not know at the
// sensor's facility.
const ReasonUnknownZone = "unknown_zone"

// New compiles the detector event schema; keys is the active pseudonymisation key, bounds
// the times accepted.
func New(keys *pseudonym.Pseudonymizer, bounds Bounds) (*Pipeline, error) {
	s, err := events.Compile(events.DetectorSchemaFile)
	if err != nil {
		return nil, err
	}
	rules, err := ruleDescriptions()
	if err != nil {
		return nil, err
	}
	return &Pipeline{schema: s, rules: rules, keys: keys, bounds: bounds, printer: message.NewPrinter(language.English)}, nil
}

// ruleDescriptions maps the index of each cross-field rule (allOf) of the detector schema to
// its description, which explains a failure better than the bare keyword that failed.
func ruleDescriptions() (map[int]string, error) {
	data, err := events.FS.ReadFile(events.DetectorSchemaFile)
	if err != nil {
		return nil, fmt.Errorf("read detector schema: %w", err)
	}
	var doc struct {
		AllOf []struct {
			Description string `json:"description"`
		} `json:"allOf"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse detector schema: %w", err)
	}
	out := make(map[int]string, len(doc.AllOf))
	for i, r := range doc.AllOf {
		out[i] = r.Description
	}
	return out, nil
}

// Outcome is what became of one event.
type Outcome struct {
	Pos  int
	Line int
	// EventID is the event's event_id as sent (at most 64 bytes), if it had a string one.
	EventID string
	// Kind is the event's kind once it decoded (valid for the schema); empty before.
	Kind event.Kind
	// Accepted events carry Raw, the JSON of the event.Raw for detections.raw.v1.
	Accepted bool
	Raw      []byte
	// Rejected events carry a reason code (event.Reason…), field errors and DLQ, the JSON
	// of the event.DLQ record.
	Code   string
	Errors []event.FieldError
	DLQ    []byte

	// body is the event's line in the request (for the dead-letter record's size and
	// keyed hash), valid while the request is handled.
	body []byte
}

// Process handles one event of sensorID, received at now. An event valid for the schema
// whose observed_at is out of the bounds at now is refused (CodeObservedAtInFuture,
// CodeObservedAtBeyondRetention).
func (p *Pipeline) Process(it batch.Item, sensorID string, now event.Time) Outcome {
	o := Outcome{Pos: it.Pos, Line: it.Line, body: it.Data}
	if it.Err != nil {
		return p.reject(o, sensorID, now, event.ReasonMalformedJSON, it.Err.Error(), nil, nil)
	}
	if !utf8.Valid(it.Data) {
		// Decoders would replace the bad bytes silently.
		return p.reject(o, sensorID, now, event.ReasonInvalidText, "the line is not valid UTF-8",
			[]event.FieldError{{Pointer: "", Reason: event.TextInvalid}}, nil)
	}
	if d, ok := fastDecode(it.Data); ok && d.SensorID == sensorID {
		o.EventID = d.EventID
		return p.accept(o, &d, now)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(it.Data))
	if err != nil {
		return p.reject(o, sensorID, now, event.ReasonMalformedJSON, "not valid JSON: "+err.Error(), nil, nil)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return p.reject(o, sensorID, now, event.ReasonMalformedJSON, batch.ErrNotObject.Error(), nil, nil)
	}
	if id, ok := m["event_id"].(string); ok {
		o.EventID = truncate(id, 64)
	}
	if ptr, ok := numbersInRange(doc, ""); !ok {
		return p.reject(o, sensorID, now, event.ReasonSchemaInvalid, "number out of range",
			[]event.FieldError{{Pointer: ptr, Reason: "number out of the range of a 64-bit float"}}, nil)
	}
	if err := p.validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return p.reject(o, sensorID, now, event.ReasonSchemaInvalid, err.Error(), nil, nil)
		}
		fe, codes := p.fieldErrors(ve)
		return p.reject(o, sensorID, now, event.ReasonSchemaInvalid, fmt.Sprintf("%d field(s) do not match detector-event.v1", len(fe)), fe, codes)
	}
	if sid, _ := m["sensor_id"].(string); sid != sensorID {
		return p.reject(o, sensorID, now, event.ReasonSensorMismatch, "sensor_id is not the authenticated sensor",
			[]event.FieldError{{Pointer: "/sensor_id", Reason: "must be the sensor the bearer token belongs to"}}, nil)
	}
	var d event.Detector
	if err := json.Unmarshal(it.Data, &d); err != nil {
		// Valid for the schema but not for Go's types: an integer written with a fraction
		// or an exponent (1.0, 1e3).
		return p.reject(o, sensorID, now, event.ReasonSchemaInvalid, "write integers without fraction or exponent: "+err.Error(), nil, nil)
	}
	return p.accept(o, &d, now)
}

// validate runs the schema. The library panics on some numbers it cannot convert (seen with
// 1e999999999999, which numbersInRange now rejects first); a panic becomes an error so that
// one event never takes the request down.
func (p *Pipeline) validate(doc any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("schema validator failed on this event: %v", r)
		}
	}()
	return p.schema.Validate(doc)
}

// numbersInRange reports the pointer of the first number that does not fit a float64.
func numbersInRange(v any, ptr string) (string, bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if p, ok := numbersInRange(val, ptr+"/"+escape(k)); !ok {
				return p, false
			}
		}
	case []any:
		for i, val := range x {
			if p, ok := numbersInRange(val, ptr+"/"+strconv.Itoa(i)); !ok {
				return p, false
			}
		}
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return ptr, false
		}
	}
	return "", true
}

func (p *Pipeline) accept(o Outcome, d *event.Detector, now event.Time) Outcome {
	o.Kind = d.Kind
	if fe := append(d.CheckText(), p.zoneProblem(d)...); len(fe) > 0 {
		return p.reject(o, d.SensorID, now, event.ReasonInvalidText, fmt.Sprintf("%d string(s) break the text rules", len(fe)), fe, nil)
	}
	r, err := d.ToRaw(p.keys, now)
	if err != nil {
		return p.reject(o, d.SensorID, now, event.ReasonPseudonymiseFailed, err.Error(), nil, nil)
	}
	o.Raw, err = event.EncodeRaw(make([]byte, 0, 640), &r)
	if err != nil {
		return p.reject(o, d.SensorID, now, event.ReasonOther, "encode: "+err.Error(), nil, nil)
	}
	o.Accepted = true
	if code, fe := p.bounds.check(d.ObservedAt, now); code != "" {
		return p.Refuse(o, d.SensorID, now, code, fe)
	}
	return o
}

// reject fills a rejection and its dead-letter record. fe are the errors answered to the
// sensor, which may quote what it sent; codes, when given, are the same errors as the
// schema keywords that failed, for the dead-letter record (whose codec keeps only texts that
// cannot hold an identifier, pkg/event/deadletter.go).
func (p *Pipeline) reject(o Outcome, sensorID string, now event.Time, code, msg string, fe, codes []event.FieldError) Outcome {
	o.Code, o.Errors = code, fe
	if len(fe) == 0 {
		o.Errors = []event.FieldError{{Pointer: "", Reason: msg}}
	}
	if codes == nil {
		codes = o.Errors
	}
	o.DLQ = p.deadLetter(o, sensorID, now, code, msg, codes)
	return o
}

// deadLetter is the JSON of the dead-letter record of o: allow-listed fields, and the body
// known only by its size and keyed hash.
func (p *Pipeline) deadLetter(o Outcome, sensorID string, now event.Time, code, msg string, fe []event.FieldError) []byte {
	rec := event.DLQ{
		Reason:     code,
		Service:    Service,
		Error:      msg,
		Errors:     fe,
		FailedAt:   now,
		SensorID:   sensorID,
		EventID:    o.EventID,
		Body:       &event.Body{Bytes: len(o.body), HMAC: p.keys.Body(o.body)},
		KeyVersion: p.keys.KeyVersion(),
	}
	b, _ := event.EncodeDLQ(&rec)
	return b
}

var allOfRE = regexp.MustCompile(`#/allOf/(\d+)`)

// fieldErrors flattens a validation error tree into its leaves: one error per bad field,
// with the JSON pointer of the field (for a missing or unknown property, the property
// itself) and a reason naming the rule, which may quote the value (for the sensor's answer);
// and the same errors with the failed keyword as reason (for the dead-letter record).
func (p *Pipeline) fieldErrors(ve *jsonschema.ValidationError) (out, codes []event.FieldError) {
	seen := map[event.FieldError]bool{}
	add := func(ptr, reason, code string) {
		fe := event.FieldError{Pointer: ptr, Reason: reason}
		if !seen[fe] && len(out) < maxFieldErrors {
			seen[fe] = true
			out = append(out, fe)
			codes = append(codes, event.FieldError{Pointer: ptr, Reason: code})
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := pointer(e.InstanceLocation)
		reason := e.ErrorKind.LocalizedString(p.printer)
		code := strings.Join(e.ErrorKind.KeywordPath(), "/")
		rule := ""
		if m := allOfRE.FindStringSubmatch(e.SchemaURL); m != nil {
			if i, err := strconv.Atoi(m[1]); err == nil && p.rules[i] != "" {
				rule = p.rules[i]
				reason = rule + " (" + reason + ")"
				code = rule + " (" + code + ")"
			}
		}
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, name := range k.Missing {
				r := "missing required field"
				if rule != "" {
					r += ": " + rule
				}
				add(ptr+"/"+escape(name), r, r)
			}
		case *kind.AdditionalProperties:
			for _, name := range k.Properties {
				add(ptr+"/"+escape(name), "unknown field (not in detector-event.v1)", "unknown field (not in detector-event.v1)")
			}
		default:
			add(ptr, reason, code)
		}
	}
	walk(ve)
	return out, codes
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escape(t))
	}
	return sb.String()
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8ValidSuffix(s) {
		s = s[:len(s)-1]
	}
	return s
}

func utf8ValidSuffix(s string) bool { return strings.ToValidUTF8(s, "") == s }
