package pipeline_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

const sensor = "cp-aix-luynes-mas-01"

func newPipeline(t testing.TB) *pipeline.Pipeline {
	t.Helper()
	k, err := pseudonym.NewKeyring("k1", []pseudonym.Key{{Version: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}}, []byte("block-key-block-key-block-key-32"), "33")
	require.NoError(t, err)
	p, err := pipeline.New(k.Active(), pipeline.DefaultBounds())
	require.NoError(t, err)
	return p
}

// valid is a valid call attempt; tests modify a copy.
func valid() map[string]any {
	return map[string]any{
		"event_id": "e-1", "sensor_id": sensor, "observed_at": "2026-11-25T09:16:41.503Z",
		"kind": "call_attempt", "rat": "2G", "band": "GSM900", "freq_mhz": 935.2, "rssi_dbm": -64,
		"outcome": "blocked", "imei": "358288021042170", "imsi": "208150123456789", "msisdn_dialed": "+33 6 12 34 56 78",
	}
}

func with(changes map[string]any, remove ...string) []byte {
	m := valid()
	for k, v := range changes {
		m[k] = v
	}
	for _, k := range remove {
		delete(m, k)
	}
	b, _ := json.Marshal(m)
	return b
}

var now = event.NewTime(time.Date(2026, 11, 25, 9, 16, 42, 0, time.UTC))

func TestValidationErrors(t *testing.T) {
	p := newPipeline(t)
	for _, tc := range []struct {
		name    string
		data    []byte
		code    string
		pointer string
		reason  string
	}{
		{"missing event_id", with(nil, "event_id"), event.ReasonSchemaInvalid, "/event_id", "missing"},
		{"missing kind", with(nil, "kind"), event.ReasonSchemaInvalid, "/kind", "missing"},
		{"unknown kind", with(map[string]any{"kind": "teleport"}), event.ReasonSchemaInvalid, "/kind", "value must be one of"},
		{"unknown field", with(map[string]any{"imei_sv": "01"}), event.ReasonSchemaInvalid, "/imei_sv", "unknown field"},
		{"rat not enum", with(map[string]any{"rat": "LTE"}), event.ReasonSchemaInvalid, "/rat", "value must be one of"},
		{"attempt without rat", with(nil, "rat"), event.ReasonSchemaInvalid, "/rat", "radio access technology"},
		{"imei letters", with(map[string]any{"imei": "35828802104217X"}), event.ReasonSchemaInvalid, "/imei", "does not match pattern"},
		{"imei as number", with(map[string]any{"imei": 358288021042170}), event.ReasonSchemaInvalid, "/imei", "got number, want string"},
		{"imsi too short", with(map[string]any{"imsi": "20815"}), event.ReasonSchemaInvalid, "/imsi", "does not match pattern"},
		{"time without ms", with(map[string]any{"observed_at": "2026-11-25T09:16:41Z"}), event.ReasonSchemaInvalid, "/observed_at", "does not match pattern"},
		{"time not utc", with(map[string]any{"observed_at": "2026-11-25T10:16:41.503+01:00"}), event.ReasonSchemaInvalid, "/observed_at", "does not match pattern"},
		{"time impossible", with(map[string]any{"observed_at": "2026-13-45T09:16:41.503Z"}), event.ReasonSchemaInvalid, "/observed_at", "date-time"},
		{"rssi string", with(map[string]any{"rssi_dbm": "-64"}), event.ReasonSchemaInvalid, "/rssi_dbm", "want number"},
		{"rssi out of range", with(map[string]any{"rssi_dbm": 80}), event.ReasonSchemaInvalid, "/rssi_dbm", "maximum"},
		{"huge number", []byte(strings.Replace(string(with(nil)), `-64`, `1e400`, 1)), event.ReasonSchemaInvalid, "/rssi_dbm", "out of the range"},
		{"msisdn on rf burst", with(map[string]any{"kind": "rf_burst"}), event.ReasonSchemaInvalid, "", "identifiers belong"},
		{"drone on call", with(map[string]any{"drone": map[string]any{"detection_source": "radar", "lat": 1, "lon": 2}}), event.ReasonSchemaInvalid, "", "drone is present exactly when"},
		{"seizure without zone", []byte(`{"event_id":"s","sensor_id":"` + sensor + `","observed_at":"2026-11-25T07:30:00.000Z","kind":"item_seized","seizure":{"phones":1,"mini_phones":0,"sims":0}}`), event.ReasonSchemaInvalid, "/zone", "zone or cell"},
		{"negative count", []byte(`{"event_id":"s","sensor_id":"` + sensor + `","observed_at":"2026-11-25T07:30:00.000Z","kind":"item_seized","zone":"a","seizure":{"phones":-1,"mini_phones":0,"sims":0}}`), event.ReasonSchemaInvalid, "/seizure/phones", "minimum"},
		{"drone bad lat", []byte(`{"event_id":"d","sensor_id":"` + sensor + `","observed_at":"2026-11-25T07:30:00.000Z","kind":"drone_seen","drone":{"detection_source":"radar","lat":91,"lon":2}}`), event.ReasonSchemaInvalid, "/drone/lat", "maximum"},
		{"other sensor", with(map[string]any{"sensor_id": "ma-nice-mas-01"}), event.ReasonSensorMismatch, "/sensor_id", "bearer token"},
		{"not json", []byte(`{"event_id": "e-1",`), event.ReasonMalformedJSON, "", "not valid JSON"},
		{"trailing garbage", []byte(`{"event_id": "e-1"} x`), event.ReasonMalformedJSON, "", "not valid JSON"},
		{"invalid utf-8", []byte("{\"event_id\": \"\xff\xfe\"}"), event.ReasonInvalidText, "", event.TextInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := p.Process(batch.Item{Pos: 3, Line: 4, Data: tc.data}, sensor, now)
			require.False(t, o.Accepted)
			require.Equal(t, tc.code, o.Code)
			require.Equal(t, 3, o.Pos)
			found := false
			for _, e := range o.Errors {
				if e.Pointer == tc.pointer && strings.Contains(e.Reason, tc.reason) {
					found = true
				}
			}
			require.True(t, found, "want pointer %q reason ~%q, got %+v", tc.pointer, tc.reason, o.Errors)
			require.NotEmpty(t, o.DLQ)
			for _, clear := range []string{"358288021042170", "208150123456789", "12 34 56 78", "35828802104217"} {
				require.NotContains(t, string(o.DLQ), clear)
			}
			var rec event.DLQ
			require.NoError(t, json.Unmarshal(o.DLQ, &rec))
			require.Equal(t, tc.code, rec.Reason)
			require.Equal(t, "ingest", rec.Service)
		})
	}
}

func TestAccepted(t *testing.T) {
	p := newPipeline(t)
	o := p.Process(batch.Item{Pos: 0, Line: 1, Data: with(nil)}, sensor, now)
	require.True(t, o.Accepted, "%+v", o.Errors)
	require.Equal(t, "e-1", o.EventID)
	var r event.Raw
	require.NoError(t, json.Unmarshal(o.Raw, &r))
	require.Equal(t, "35828802", r.TAC)
	require.Equal(t, "208", r.MCC)
	require.Equal(t, "15", r.MNC)
	require.Equal(t, "k1", r.KeyVersion)
	require.NotEmpty(t, r.MSISDNPseudo)
	require.Equal(t, now, r.ReceivedAt)
	for _, clear := range []string{"358288021042170", "208150123456789", "612345678"} {
		require.NotContains(t, string(o.Raw), clear)
	}
}

func BenchmarkProcess(b *testing.B) {
	p := newPipeline(b)
	data := with(nil)
	b.ReportAllocs()
	for b.Loop() {
		o := p.Process(batch.Item{Data: data}, sensor, now)
		if !o.Accepted {
			b.Fatal(o.Errors)
		}
	}
}
