package pipeline_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/schemas/events"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

// seeds are events the differential tests and the fuzz target start from.
func seeds(t testing.TB) [][]byte {
	ex, err := events.Examples("examples")
	require.NoError(t, err)
	var out [][]byte
	for _, d := range ex {
		out = append(out, d)
	}
	for _, c := range []map[string]any{
		{"zone": ""}, {"zone": nil}, {"duration_ms": 1.0}, {"EVENT_ID": "x"}, {"rat": "4g"},
		{"kind": "rf_burst"}, {"kind": "sms_attempt"}, {"kind": "data_attempt", "data_bytes": 10},
		{"freq_mhz": 0}, {"rssi_dbm": -200.5}, {"imei": "3582880210421"}, {"msisdn_dialed": "+"},
		{"event_id": ":x"}, {"sensor_id": "A"}, {"observed_at": "2026-02-30T00:00:00.000Z"},
	} {
		out = append(out, with(c))
	}
	base := `{"event_id":"e","sensor_id":"` + sensor + `","observed_at":"2026-11-25T09:16:41.503Z","kind":"rf_burst","rssi_dbm":`
	for _, num := range []string{"-0", "1E1", "-1e+1", "1.", ".5", "01", "-", "1e", "0x10", "NaN", "Infinity", "1_0", "+1", "-40 ", "\t-40"} {
		out = append(out, []byte(base+num+`,"band":"B20"}`))
	}
	out = append(out,
		[]byte(" \n"+`{ "event_id" : "e" , "sensor_id" : "`+sensor+`" , "observed_at" : "2026-11-25T09:16:41.503Z" , "kind" : "mas_attach" , "rat" : "4G" } `),
		[]byte(`{"event_id":"e","event_id":"f","sensor_id":"`+sensor+`","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G"}`),
		[]byte(`{"event_id":"e","sensor_id":"`+sensor+`","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G","zone":"\u00e9"}`),
		[]byte(`{"event_id":"e","sensor_id":"`+sensor+`","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G","zone":"é\x01"}`),
		[]byte(`{"event_id":"e","sensor_id":"`+sensor+`","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G",}`))
	out = append(out, []byte(`{"event_id":"e","sensor_id":"s","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G"}{}`),
		[]byte(`{"event_id":"e","sensor_id":"s","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G","ev\u0065nt_id":"f"}`),
		[]byte(`{"event_id":"e","sensor_id":"s","observed_at":"2026-11-25T09:16:41.503Z","kind":"mas_attach","rat":"4G","duration_ms":1e3}`))
	return out
}

// checkAgreement fails when the fast path accepts an event the schema rejects, or decodes
// it differently from the slow path.
func checkAgreement(t *testing.T, schema *jsonschema.Schema, data []byte) {
	d, ok := pipeline.FastDecode(data)
	if !ok {
		return
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err, "fast path accepted invalid JSON %q", data)
	require.NoError(t, schema.Validate(doc), "fast path accepted an event the schema rejects: %s", data)
	var slow map[string]any
	require.NoError(t, json.Unmarshal(data, &slow))
	fast, err := json.Marshal(d)
	require.NoError(t, err)
	var fastDoc map[string]any
	require.NoError(t, json.Unmarshal(fast, &fastDoc))
	require.Equal(t, slow, fastDoc, "fast path decoded %s differently", data)
}

func TestFastPathAgreesWithSchema(t *testing.T) {
	schema, err := events.Compile(events.DetectorSchemaFile)
	require.NoError(t, err)
	fastCount := 0
	for _, s := range seeds(t) {
		checkAgreement(t, schema, s)
		if _, ok := pipeline.FastDecode(s); ok {
			fastCount++
		}
	}
	require.Greater(t, fastCount, 5, "the fast path takes the common events")
}

// FuzzProcess is the fuzz target of the request parser and event pipeline: any body splits
// without panic, every event gets exactly one outcome, no outcome leaks a clear identifier
// of the seed events, and the fast path never accepts what the schema rejects.
func FuzzProcess(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add([]byte("[" + string(with(nil)) + "," + string(with(map[string]any{"event_id": "e-2"})) + "]"))
	f.Add([]byte(string(with(nil)) + "\n\n" + string(with(map[string]any{"event_id": "e-2"})) + "\n{bad\n"))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Add([]byte(`{"a":` + string(bytes.Repeat([]byte("["), 10000)) + "}"))
	f.Add([]byte("{\"event_id\":\"\xff\xfe\xfd\"}\n"))
	f.Add([]byte(`{"event_id":"e","rssi_dbm":1e999999999999}`))
	f.Add([]byte(`{"event_id":"e","duration_ms":123456789012345678901234567890}`))
	p := newPipeline(f)
	schema, err := events.Compile(events.DetectorSchemaFile)
	require.NoError(f, err)
	lim := batch.Limits{MaxBodyBytes: 1 << 20, MaxEvents: 100, MaxEventBytes: 4096}
	f.Fuzz(func(t *testing.T, body []byte) {
		var items []batch.Item
		if err := batch.Split(body, lim, &items); err != nil {
			return
		}
		for i, it := range items {
			require.Equal(t, i, it.Pos)
			if it.Err == nil {
				checkAgreement(t, schema, it.Data)
			}
			o := p.Process(it, sensor, now)
			require.Equal(t, i, o.Pos)
			if o.Accepted {
				require.NotEmpty(t, o.Raw)
				require.Empty(t, o.DLQ)
			} else {
				require.NotEmpty(t, o.Code)
				require.NotEmpty(t, o.Errors)
				require.NotEmpty(t, o.DLQ)
				for _, clear := range []string{"358288021042170", "208150123456789"} {
					require.NotContains(t, string(o.DLQ), clear)
				}
			}
		}
	})
}
