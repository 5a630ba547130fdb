package pipeline_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

// identifierForms are a phone number, an IMSI and an IMEI as a hostile sender writes them
// into a string: plain, split by separators, in full-width digits.
var identifierForms = []string{
	"0612345678", "+33612345678", "208150123456789", "358288021042170", "35828802104217",
	"06 12 34 56 78", "06.12.34.56.78", "(06) 12-34-56-78", "208_150_123_456_789",
	"35:82:88:02:10:42:17", "３５８２８８０２１０４２１７０", "zone 0612345678 east",
}

// TestTextRulesRefuseLabels: an identifier in a label (zone, cell, band, search id, jammer id
// and bands), in any of its forms, is refused as invalid_text naming the field; so are control
// characters and invalid UTF-8. Nothing of it is accepted, and the dead letter holds none of it.
func TestTextRulesRefuseLabels(t *testing.T) {
	p := newPipeline(t)
	seizure := func(field, v string) []byte {
		return []byte(`{"event_id":"s-1","sensor_id":"` + sensor + `","observed_at":"2026-11-25T09:16:41.503Z","kind":"item_seized","zone":"cell-block-a",` +
			`"seizure":{"phones":1,"` + field + `":` + jsonString(v) + `}}`)
	}
	jammer := func(field string, v any) []byte {
		b, _ := json.Marshal(v)
		return []byte(`{"event_id":"j-1","sensor_id":"` + sensor + `","observed_at":"2026-11-25T09:16:41.503Z","kind":"jammer_alarm","zone":"cell-block-a",` +
			`"jammer":{"alarm":"fault","severity":"critical","` + field + `":` + string(b) + `}}`)
	}
	for _, v := range identifierForms {
		for _, tc := range []struct {
			data    []byte
			pointer string
		}{
			{with(map[string]any{"zone": v}), "/zone"},
			{with(map[string]any{"cell": v}), "/cell"},
			{seizure("search_id", v), "/seizure/search_id"},
			{jammer("jammer_id", v), "/jammer/jammer_id"},
			{jammer("bands", []string{"B20", v}), "/jammer/bands/1"},
		} {
			o := p.Process(batch.Item{Data: tc.data}, sensor, now)
			if !o.Accepted && o.Code == event.ReasonSchemaInvalid {
				// The schema's own pattern (band, ...) refused it first: also fine.
				continue
			}
			require.False(t, o.Accepted, "%s in %s", v, tc.pointer)
			require.Equal(t, event.ReasonInvalidText, o.Code, "%s in %s: %+v", v, tc.pointer, o.Errors)
			require.Equal(t, []event.FieldError{{Pointer: tc.pointer, Reason: event.TextIdentifier}}, o.Errors)
			requireNoDigits(t, o.DLQ, v)
		}
	}
	// Escaped, the digits are the same digits once decoded.
	escaped := []byte(strings.Replace(string(with(map[string]any{"zone": "ZONE"})), `"ZONE"`, `"\u0030\u0036\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038"`, 1))
	o := p.Process(batch.Item{Data: escaped}, sensor, now)
	require.Equal(t, event.ReasonInvalidText, o.Code, "%+v", o.Errors)

	// Strings the schema leaves open (a drone's ids) are checked for control characters and
	// invalid UTF-8 by the text rules; labels are refused by their schema pattern already.
	drone := func(operator string) []byte {
		return []byte(`{"event_id":"d-1","sensor_id":"` + sensor + `","observed_at":"2026-11-25T09:16:41.503Z","kind":"drone_seen","drone":{"detection_source":"remote_id","lat":43.5,"lon":5.4,` +
			`"remote_id":{"uas_id":"1581F5FHC21A8003D8X9","uas_id_type":"serial_number","operator_id":"` + operator + `"}}}`)
	}
	const op = "/drone/remote_id/operator_id"
	for name, tc := range map[string]struct {
		data []byte
		fe   event.FieldError
	}{
		"NUL":                 {drone(`FRA\u0000x`), event.FieldError{Pointer: op, Reason: event.TextControl}},
		"newline":             {drone(`FRA\nx`), event.FieldError{Pointer: op, Reason: event.TextControl}},
		"C1 control":          {drone(`FRA\u0085x`), event.FieldError{Pointer: op, Reason: event.TextControl}},
		"lone surrogate":      {drone(`FRA\ud800x`), event.FieldError{Pointer: op, Reason: event.TextInvalid}},
		"invalid UTF-8 bytes": {drone("FRA\xff\xfex"), event.FieldError{Pointer: "", Reason: event.TextInvalid}},
	} {
		o := p.Process(batch.Item{Data: tc.data}, sensor, now)
		require.False(t, o.Accepted, name)
		require.Equal(t, event.ReasonInvalidText, o.Code, "%s: %+v", name, o.Errors)
		require.Equal(t, []event.FieldError{tc.fe}, o.Errors, name)
	}
	for _, data := range [][]byte{
		[]byte(strings.Replace(string(with(map[string]any{"zone": "ZONE"})), `"ZONE"`, `"cell\u0000a"`, 1)),
		with(map[string]any{"cell": "A\n12"}),
	} {
		o := p.Process(batch.Item{Data: data}, sensor, now)
		require.False(t, o.Accepted)
		require.Contains(t, []string{event.ReasonSchemaInvalid, event.ReasonInvalidText}, o.Code, "%+v", o.Errors)
	}

	// Labels as detectors write them pass.
	for _, v := range []string{"cell-block-a", "B2-017", "yard-A", "op-prison-break-2025", "s-cp-fresnes-12-345"} {
		o := p.Process(batch.Item{Data: with(map[string]any{"zone": v, "cell": "A-102"})}, sensor, now)
		require.True(t, o.Accepted, "%s: %+v", v, o.Errors)
	}
}

// TestTextRulesPseudonymise: an event_id holding a long digit run is not refused (it is the
// sensor's identity of the event) but pseudonymised, the same for every resend; the drone's
// Remote ID and operator id become pseudonyms, the operator's position is coarsened and
// their altitude dropped.
func TestTextRulesPseudonymise(t *testing.T) {
	p := newPipeline(t)
	for _, id := range identifierForms[:10] {
		idJSON := jsonString(id)
		if strings.ContainsAny(id, " ()+") || strings.ContainsRune(id, '３') {
			continue // not of the event_id pattern: refused by the schema
		}
		data := []byte(strings.Replace(string(with(nil)), `"e-1"`, idJSON, 1))
		o := p.Process(batch.Item{Data: data}, sensor, now)
		require.True(t, o.Accepted, "%s: %+v", id, o.Errors)
		require.NotContains(t, string(o.Raw), idJSON)
		var r event.Raw
		require.NoError(t, json.Unmarshal(o.Raw, &r))
		require.Regexp(t, `^p-[0-9a-f]{32}$`, r.EventID)
		again := p.Process(batch.Item{Data: data}, sensor, now)
		require.Equal(t, string(o.Raw), string(again.Raw), "the same pseudonym for a resend")
	}

	drone := []byte(`{"event_id":"d-1","sensor_id":"` + sensor + `","observed_at":"2026-11-25T09:16:41.503Z","kind":"drone_seen","drone":{"detection_source":"remote_id","lat":43.5,"lon":5.4,` +
		`"remote_id":{"uas_id":"1581F5FHC21A8003D8X9","uas_id_type":"serial_number","operator_id":"FRA0612345678","operator_lat":43.30512,"operator_lon":5.41188,"operator_alt_m":74}}}`)
	o := p.Process(batch.Item{Data: drone}, sensor, now)
	require.True(t, o.Accepted, "%+v", o.Errors)
	for _, clear := range []string{"1581F5FHC21A8003D8X9", "FRA0612345678", "0612345678", "43.30512", "5.41188", "operator_alt_m"} {
		require.NotContains(t, string(o.Raw), clear)
	}
	var r event.Raw
	require.NoError(t, json.Unmarshal(o.Raw, &r))
	rid := r.Drone.RemoteID
	require.Regexp(t, `^[0-9a-f]{32}$`, rid.UASID)
	require.Regexp(t, `^[0-9a-f]{32}$`, rid.OperatorID)
	require.InDelta(t, 43.31, *rid.OperatorLat, 1e-9)
	require.InDelta(t, 5.41, *rid.OperatorLon, 1e-9)
	require.Nil(t, rid.OperatorAltM)
	require.NotEmpty(t, r.KeyVersion)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var nonDigits = regexp.MustCompile(`[^0-9]`)

// requireNoDigits fails when out holds the digits of form (without their separators).
func requireNoDigits(t *testing.T, out []byte, form string) {
	t.Helper()
	d := nonDigits.ReplaceAllString(form, "")
	if len(d) < 9 {
		return
	}
	require.NotContains(t, nonDigits.ReplaceAllString(string(out), ""), d[:9], "the digits of %q", form)
}

// TestZonesFromReference: with the reference, a zone is one of the sensor's facility's zones;
// another facility's zone, free text or a sensor the reference does not know are refused.
func TestZonesFromReference(t *testing.T) {
	snap, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	var mas *reference.Sensor
	for _, s := range snap.Sensors() {
		if s.Type == reference.SensorMAS {
			mas = s
			break
		}
	}
	require.NotNil(t, mas)
	p := newPipeline(t)
	p.CheckZones(func() *reference.Snapshot { return snap })
	line := func(sensor, zone string) []byte {
		return []byte(strings.Replace(string(with(map[string]any{"sensor_id": sensor, "zone": zone})), "\n", "", -1))
	}
	o := p.Process(batch.Item{Data: line(mas.ID, mas.Zone)}, mas.ID, now)
	require.True(t, o.Accepted, "%+v", o.Errors)
	for _, zone := range []string{"no-such-zone", "JohnSmith", "A-99"} {
		o := p.Process(batch.Item{Data: line(mas.ID, zone)}, mas.ID, now)
		require.Equal(t, event.ReasonInvalidText, o.Code, zone)
		require.Equal(t, []event.FieldError{{Pointer: "/zone", Reason: pipeline.ReasonUnknownZone}}, o.Errors)
	}
	o = p.Process(batch.Item{Data: line("xx-unknown-mas-01", mas.Zone)}, "xx-unknown-mas-01", now)
	require.Equal(t, event.ReasonInvalidText, o.Code, "a sensor the reference does not know")
}
