package event_test

import (
	"bytes"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/schemas/events"
)

// codec is one contract's pair of functions, as the services call them.
type codec struct {
	schema, dir string
	// roundTrip decodes data with the contract's decoder and encodes the result with its
	// encoder.
	roundTrip func(data []byte) ([]byte, error)
}

var codecs = []codec{
	{events.RawSchemaFile, "examples/raw", func(data []byte) ([]byte, error) {
		var r event.Raw
		if err := event.DecodeRaw(data, &r); err != nil {
			return nil, err
		}
		return event.EncodeRaw(nil, &r)
	}},
	{events.EnrichedSchemaFile, "examples/enriched", func(data []byte) ([]byte, error) {
		var e event.Enriched
		if err := event.DecodeEnriched(data, &e); err != nil {
			return nil, err
		}
		return event.EncodeEnriched(nil, &e)
	}},
	{events.DLQSchemaFile, "examples/dlq", func(data []byte) ([]byte, error) {
		var rec event.DLQ
		if err := event.DecodeDLQ(data, &rec); err != nil {
			return nil, err
		}
		return event.EncodeDLQ(&rec)
	}},
	{events.AlertSchemaFile, "examples/alert", func(data []byte) ([]byte, error) {
		var a event.Alert
		if err := event.DecodeAlert(data, &a); err != nil {
			return nil, err
		}
		return event.EncodeAlert(&a)
	}},
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	require.NoError(t, s.Validate(doc), string(data))
}

// TestCodecsRoundTripExamples decodes every example of each contract with its codec,
// encodes it again, and requires the same document, valid against the contract's schema.
func TestCodecsRoundTripExamples(t *testing.T) {
	for _, c := range codecs {
		s, err := events.Compile(c.schema)
		require.NoError(t, err)
		ex, err := events.Examples(c.dir)
		require.NoError(t, err)
		require.NotEmpty(t, ex, c.dir)
		for name, data := range ex {
			t.Run(c.dir+"/"+name, func(t *testing.T) {
				out, err := c.roundTrip(data)
				require.NoError(t, err)
				require.JSONEq(t, string(data), string(out))
				validate(t, s, out)
			})
		}
	}
}

// TestDecoderMatchesEncodingJSON holds the fast decoder to encoding/json on the examples.
func TestDecoderMatchesEncodingJSON(t *testing.T) {
	d := event.NewDecoder()
	for _, dir := range []string{"examples", "examples/raw", "examples/enriched"} {
		ex, err := events.Examples(dir)
		require.NoError(t, err)
		for name, data := range ex {
			var want, got event.Enriched
			require.NoError(t, json.Unmarshal(data, &want), name)
			require.NoError(t, d.Enriched(data, &got), name)
			require.Equal(t, want, got, dir+"/"+name)
		}
	}
	raws, err := events.Examples("examples/raw")
	require.NoError(t, err)
	for name, data := range raws {
		var want, got event.Raw
		require.NoError(t, json.Unmarshal(data, &want), name)
		require.NoError(t, d.Raw(data, &got), name)
		require.Equal(t, want, got, name)
		var view event.Raw
		require.NoError(t, d.RawView(data, &view), name)
		require.Equal(t, want, view, name)
		out, err := event.EncodeRaw(nil, &view)
		require.NoError(t, err)
		require.JSONEq(t, string(data), string(out))
	}
}

func requireSameAsMarshalEnriched(t *testing.T, e *event.Enriched) {
	t.Helper()
	want, err := json.Marshal(e)
	require.NoError(t, err)
	got, err := e.AppendJSON(nil)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func TestEnrichedAppendJSONMatchesMarshal(t *testing.T) {
	ex, err := events.Examples("examples/enriched")
	require.NoError(t, err)
	for name, data := range ex {
		var e event.Enriched
		require.NoError(t, json.Unmarshal(data, &e), name)
		requireSameAsMarshalEnriched(t, &e)
	}
	f := func(v float64) *float64 { return &v }
	b := false
	for _, v := range []float64{0, -90, 1e-7, 43.5263, 180} {
		requireSameAsMarshalEnriched(t, &event.Enriched{Enrichment: event.Enrichment{FacilityLat: f(v), MiniPhone: &b}})
	}
	for _, s := range []string{"Maison d'arrêt de Nice", "a<b>&c", "\x00\n", "\xff", "\u2028"} {
		requireSameAsMarshalEnriched(t, &event.Enriched{Enrichment: event.Enrichment{FacilityName: s, Operator: s}})
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	raw := func(extra string) string {
		return `{"event_id":"e1","sensor_id":"s1","observed_at":"2026-11-25T09:00:00.000Z","kind":"rf_burst","received_at":"2026-11-25T09:00:01.000Z"` + extra + `}`
	}
	dlq := func(extra string) string {
		return `{"reason":"other","service":"writer","error":"x","failed_at":"2026-11-25T09:00:00.000Z"` + extra + `}`
	}
	tests := []struct {
		name, in, field string
		decode          func([]byte) error
	}{
		{"enriched string expected", `{"event_id": 12}`, "event_id", decodeEnriched},
		{"enriched bad time", `{"observed_at": "yesterday"}`, "observed_at", decodeEnriched},
		{"enriched nested", `{"drone": {"lat": "north"}}`, "drone.lat", decodeEnriched},
		{"enriched bool", `{"mini_phone": "yes"}`, "mini_phone", decodeEnriched},
		{"enriched integer", `{"duration_ms": 1.5}`, "duration_ms", decodeEnriched},
		{"enriched array item", `{"jammer": {"bands": [1]}}`, "jammer.bands[]", decodeEnriched},
		{"raw missing field", `{"event_id":"e1","sensor_id":"s1","observed_at":"2026-11-25T09:00:00.000Z","kind":"rf_burst"}`, "received_at", decodeRaw},
		{"raw wrong type", raw(`,"rssi_dbm":"loud"`), "rssi_dbm", decodeRaw},
		{"raw with enrichment", raw(`,"facility_id":"cp-aix-luynes"`), "facility_id", decodeRaw},
		{"dlq wrong type", dlq(`,"source":{"topic":"t","partition":"one","offset":1}`), "source.partition", decodeDLQ},
		{"dlq missing field", `{"reason":"other","error":"x","failed_at":"2026-11-25T09:00:00.000Z"}`, "service", decodeDLQ},
		{"dlq bad time", `{"reason":"other","service":"writer","error":"x","failed_at":"yesterday"}`, "failed_at", decodeDLQ},
		{"alert wrong type", `{"alert_id":"a","version":"2"}`, "version", decodeAlert},
		{"alert bad time", `{"alert_id":"a","rule":"R","window_end":"2026-11-25"}`, "window_end", decodeAlert},
		{"alert missing field", `{"alert_id":"a","rule":"R"}`, "first_evidence_at", decodeAlert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.field)
		})
	}
	require.ErrorIs(t, decodeRaw([]byte(raw(`,"device_key":"k"`))), event.ErrEnrichedInput)
	require.ErrorIs(t, decodeRaw([]byte(`{"event_id":"e1"}`)), event.ErrMissingField)
}

func decodeEnriched(b []byte) error { var e event.Enriched; return event.DecodeEnriched(b, &e) }
func decodeRaw(b []byte) error      { var r event.Raw; return event.DecodeRaw(b, &r) }
func decodeDLQ(b []byte) error      { var r event.DLQ; return event.DecodeDLQ(b, &r) }
func decodeAlert(b []byte) error    { var a event.Alert; return event.DecodeAlert(b, &a) }

// TestDecodeErrors: what the fast decoder refuses, encoding/json refuses too.
func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not json", `{"event_id": `},
		{"not an object", `[1, 2]`},
		{"string expected", `{"event_id": 12}`},
		{"bad time", `{"observed_at": "yesterday"}`},
		{"bad month", `{"observed_at": "2026-13-25T09:14:07.125Z"}`},
		{"fraction in integer", `{"duration_ms": 1.5}`},
		{"number as string", `{"duration_ms": "15"}`},
		{"drone not an object", `{"drone": "high"}`},
		{"bool expected", `{"mini_phone": "yes"}`},
		{"trailing data", `{"event_id": "e"} {}`},
	}
	d := event.NewDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event.Enriched
			require.Error(t, d.Enriched([]byte(tt.in), &e))
			require.Error(t, json.Unmarshal([]byte(tt.in), &e), "encoding/json rejects it too")
		})
	}
}

func TestDecodeTimeOtherLayouts(t *testing.T) {
	var e event.Enriched
	require.NoError(t, event.DecodeEnriched([]byte(`{"observed_at": "2026-11-25T10:14:07.1+01:00"}`), &e))
	require.Equal(t, time.Date(2026, 11, 25, 9, 14, 7, 100_000_000, time.UTC), e.ObservedAt.Time)
	require.NoError(t, event.DecodeEnriched([]byte(`{"observed_at": "2028-02-29T00:00:00.000Z"}`), &e))
	require.Error(t, event.DecodeEnriched([]byte(`{"observed_at": "2026-02-29T00:00:00.000Z"}`), &e))
}

// TestEncodeAlert: the contract's timestamps (UTC, milliseconds), lists never null, valid
// against the alert schema; json.Marshal gives the same bytes.
func TestEncodeAlert(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 25, 10, 14, 7, 0, paris)
	a := event.Alert{
		ID: "0123456789abcdef0123456789abcdef", Rule: "DEVICE_MULTI_SITE", Severity: "medium", GroupKey: "k",
		FirstEvidenceAt: at, LastEvidenceAt: at, WindowStart: at.Add(-time.Hour), WindowEnd: at,
		EvidenceCount: 2, Explanation: "x", CreatedAt: at, UpdatedAt: at, Version: 1,
	}
	out, err := event.EncodeAlert(&a)
	require.NoError(t, err)
	require.Contains(t, string(out), `"facilities":[]`)
	require.Contains(t, string(out), `"evidence_event_ids":[]`)
	require.Contains(t, string(out), `"updated_at":"2026-11-25T09:14:07.000Z"`)
	s, err := events.Compile(events.AlertSchemaFile)
	require.NoError(t, err)
	validate(t, s, out)
	viaMarshal, err := json.Marshal(a)
	require.NoError(t, err)
	require.Equal(t, string(out), string(viaMarshal))

	var back event.Alert
	require.NoError(t, event.DecodeAlert(out, &back))
	require.True(t, back.UpdatedAt.Equal(at))
	require.Empty(t, back.Facilities)
}

// TestAlertExtend: a later finding merges into the earlier one, keeping its identity.
func TestAlertExtend(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	a := event.Alert{ID: "id", Facilities: []string{"b"}, EvidenceIDs: []string{"e1"}, EvidenceCount: 1,
		FirstEvidenceAt: t0, LastEvidenceAt: t0, WindowStart: t0, WindowEnd: t0, CreatedAt: t0, UpdatedAt: t0}
	later := event.Alert{ID: "other", Facilities: []string{"a", "b"}, EvidenceIDs: []string{"e0", "e2"}, EvidenceCount: 1,
		FirstEvidenceAt: t0.Add(-time.Hour), LastEvidenceAt: t0.Add(time.Hour), WindowStart: t0, WindowEnd: t0.Add(time.Hour),
		UpdatedAt: t0.Add(time.Hour), Explanation: "later"}
	require.True(t, a.Extend(&later, 2))
	require.Equal(t, "id", a.ID)
	require.Equal(t, []string{"a", "b"}, a.Facilities)
	require.Equal(t, []string{"e0", "e1"}, a.EvidenceIDs, "at most maxEvidence")
	require.Equal(t, t0.Add(-time.Hour), a.FirstEvidenceAt)
	require.Equal(t, t0.Add(time.Hour), a.UpdatedAt)
	require.Equal(t, "later", a.Explanation)
	same := a
	require.False(t, a.Extend(&same, 2), "nothing new")
}

// FuzzDecodeEnriched holds the fast decoder to encoding/json on outside input: it never
// panics, and whatever encoding/json reads, once re-encoded (as a producer of the contract
// writes it), it reads identically; and the Raw decoder never panics either.
func FuzzDecodeEnriched(f *testing.F) {
	for _, dir := range []string{"examples", "examples/raw", "examples/enriched"} {
		ex, err := events.Examples(dir)
		require.NoError(f, err)
		names := make([]string, 0, len(ex))
		for n := range ex {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			f.Add(ex[n])
		}
	}
	f.Add([]byte(`{"jammer": {"bands": [null, "B20"]}, "seizure": {"phones": 3}}`))
	f.Add([]byte(`{"observed_at": "2026-02-29T00:00:00.000Z"}`))
	f.Add([]byte(`{"freq_mhz": 1e400, "duration_ms": 9223372036854775808}`))
	d := event.NewDecoder()
	f.Fuzz(func(t *testing.T, data []byte) {
		var r event.Raw
		_ = d.Raw(data, &r)
		_ = d.RawView(data, &r)
		var got event.Enriched
		_ = d.Enriched(data, &got)
		var want event.Enriched
		if json.Unmarshal(data, &want) != nil {
			return
		}
		canonical, err := json.Marshal(want)
		if err != nil {
			return // NaN cannot come out of JSON; anything else is a bug caught below
		}
		want = event.Enriched{}
		require.NoError(t, json.Unmarshal(canonical, &want))
		require.NoError(t, d.Enriched(canonical, &got), string(canonical))
		require.Equal(t, want, got, string(canonical))
		// The encoder writes what encoding/json writes.
		enc, err := got.AppendJSON(nil)
		require.NoError(t, err)
		require.Equal(t, string(canonical), string(enc))
	})
}

var benchErr error

func benchMessages(b *testing.B) [][]byte {
	ex, err := events.Examples("examples/enriched")
	require.NoError(b, err)
	var msgs [][]byte
	for _, data := range ex {
		var e event.Enriched
		require.NoError(b, json.Unmarshal(data, &e))
		m, err := json.Marshal(&e) // compact, as on the wire
		require.NoError(b, err)
		msgs = append(msgs, m)
	}
	return msgs
}

func BenchmarkDecodeEnriched(b *testing.B) {
	msgs := benchMessages(b)
	d := event.NewDecoder()
	var e event.Enriched
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchErr = d.Enriched(msgs[i%len(msgs)], &e)
		i++
	}
}

func BenchmarkEncodeEnriched(b *testing.B) {
	msgs := benchMessages(b)
	es := make([]event.Enriched, len(msgs))
	for i, m := range msgs {
		require.NoError(b, json.Unmarshal(m, &es[i]))
	}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf, benchErr = es[i%len(es)].AppendJSON(buf[:0])
		i++
	}
}
