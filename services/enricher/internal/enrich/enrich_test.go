package enrich

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/schemas/events"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

// exampleSensors registers the sensors of the contract's raw examples.
const exampleSensors = "sensor_id,facility_id,building,floor,zone_type,zone,x_m,y_m,sensor_type,vendor\n" +
	"cp-aix-luynes-mas-01,cp-aix-luynes,B,2,cell_block,B-2,10,20,mas,mas-vendor-a\n" +
	"ma-nice-mas-01,ma-nice,A,1,cell_block,A-1,0,0,mas,mas-vendor-b\n" +
	"cp-marseille-drone-01,cp-marseille,perimeter,0,perimeter,perimeter,200,0,drone_detector,drone-vendor-a\n" +
	"cp-aix-luynes-searches,cp-aix-luynes,admin,0,cell_block,search-team,0,0,search_report,search-report-app\n" +
	"ma-grasse-jam-03,ma-grasse,A,0,cell_block,A-0,0,0,jammer,jammer-vendor-a\n" +
	"cd-salon-de-provence-rf-07,cd-salon-de-provence,C,1,cell_block,C-1,0,0,rf_detector,rf-vendor-c\n"

func exampleSnapshot(t testing.TB) *reference.Snapshot {
	fsys := fstest.MapFS{}
	for _, name := range reference.Files {
		b, err := fs.ReadFile(schemaref.FS, name)
		require.NoError(t, err)
		fsys[name] = &fstest.MapFile{Data: b}
	}
	fsys[reference.SensorsFile] = &fstest.MapFile{Data: []byte(exampleSensors)}
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	return snap
}

func TestEnrichExamples(t *testing.T) {
	table := Compile(exampleSnapshot(t))
	enrichedSchema, err := events.Compile(events.EnrichedSchemaFile)
	require.NoError(t, err)
	raws, err := events.Examples("examples/raw")
	require.NoError(t, err)
	now := event.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))

	tests := []struct {
		file         string
		facility     string
		disp         string
		sensorType   string
		zone         string
		zoneType     string
		key          string // "" : the IMEI pseudonym
		manufacturer string
		model        string
		mini         *bool
		operator     string
		tacUnknown   bool
		opUnknown    bool
	}{
		{file: "mas_attach.json", facility: "cp-aix-luynes", disp: "Marseille", sensorType: "mas", zone: "bat-b", zoneType: "cell_block", manufacturer: "AIEK/AEKU", model: "V8", mini: ptr(true), operator: "Free Mobile"},
		{file: "call_attempt.json", facility: "cp-aix-luynes", disp: "Marseille", sensorType: "mas", zone: "bat-b", zoneType: "cell_block", manufacturer: "AIEK/AEKU", model: "V8", mini: ptr(true), operator: "Free Mobile"},
		{file: "sms_attempt.json", facility: "ma-nice", disp: "Marseille", sensorType: "mas", zone: "A-1", zoneType: "cell_block", manufacturer: "AIEK/AEKU", model: "M5", mini: ptr(true), operator: "Altice"},
		{file: "data_attempt.json", facility: "ma-nice", disp: "Marseille", sensorType: "mas", zone: "quartier-arrivants", zoneType: "cell_block", manufacturer: "AIEK/AEKU", model: "M5", mini: ptr(true), operator: "T-Mobile US"},
		{file: "rf_burst.json", facility: "cd-salon-de-provence", disp: "Marseille", sensorType: "rf_detector", zone: "bat-c", zoneType: "cell_block", key: "sensor:cd-salon-de-provence-rf-07"},
		{file: "drone_seen.json", facility: "cp-marseille", disp: "Marseille", sensorType: "drone_detector", zone: "cour-2", zoneType: "perimeter", key: "sensor:cp-marseille-drone-01"},
		{file: "drone_seen_radar.json", facility: "cp-marseille", disp: "Marseille", sensorType: "drone_detector", zone: "perimeter", zoneType: "perimeter", key: "sensor:cp-marseille-drone-01"},
		{file: "jammer_alarm.json", facility: "ma-grasse", disp: "Marseille", sensorType: "jammer", zone: "bat-a", zoneType: "cell_block", key: "sensor:ma-grasse-jam-03"},
		{file: "item_seized.json", facility: "cp-aix-luynes", disp: "Marseille", sensorType: "search_report", zone: "bat-b", zoneType: "cell_block", manufacturer: "AIEK/AEKU", model: "V8", mini: ptr(true), operator: "Free Mobile"},
		{file: "item_seized_nothing.json", facility: "cp-aix-luynes", disp: "Marseille", sensorType: "search_report", zone: "bat-b", zoneType: "cell_block", key: "sensor:cp-aix-luynes-searches"},
	}
	require.Len(t, tests, len(raws), "every raw example is covered")
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			msg, ok := raws[tt.file]
			require.True(t, ok)
			res := Enrich(table, msg, event.Source{Topic: event.TopicRaw}, now)
			require.Equal(t, Enriched, res.Outcome, string(res.Value))
			require.Equal(t, tt.tacUnknown, res.TACUnknown)
			require.Equal(t, tt.opUnknown, res.OperatorUnknown)

			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.Value))
			require.NoError(t, err)
			require.NoError(t, enrichedSchema.Validate(doc), string(res.Value))

			var raw event.Raw
			require.NoError(t, json.Unmarshal(msg, &raw))
			var got event.Enriched
			dec := json.NewDecoder(bytes.NewReader(res.Value))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&got))

			// Every raw field is kept (the zone is filled from the sensor when absent).
			wantRaw := raw
			wantRaw.Zone = tt.zone
			require.Equal(t, wantRaw, got.Raw)

			key := tt.key
			if key == "" {
				key = raw.IMEIPseudo
			}
			require.Equal(t, key, string(res.Key))
			require.Equal(t, key, got.Enrichment.DeviceKey)
			require.Equal(t, now, got.EnrichedAt)

			e := got.Enrichment
			require.Equal(t, tt.facility, e.FacilityID)
			require.Equal(t, tt.disp, e.DISP)
			require.Equal(t, tt.sensorType, e.SensorType)
			require.Equal(t, tt.zoneType, e.ZoneType)
			require.NotEmpty(t, e.FacilityName)
			require.NotEmpty(t, e.FacilityType)
			require.NotEmpty(t, e.DepartmentCode)
			require.NotEmpty(t, e.Vendor)
			require.NotNil(t, e.FacilityLat)
			require.Equal(t, tt.manufacturer, e.Manufacturer)
			require.Equal(t, tt.model, e.Model)
			require.Equal(t, tt.mini, e.MiniPhone)
			require.Equal(t, tt.operator, e.Operator)
			if tt.operator != "" {
				require.NotEmpty(t, e.Country)
			}
		})
	}
}

func TestEnrichUnknowns(t *testing.T) {
	table := Compile(exampleSnapshot(t))
	dlqSchema, err := events.Compile(events.DLQSchemaFile)
	require.NoError(t, err)
	now := event.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	src := event.Source{Topic: event.TopicRaw, Partition: 3, Offset: 42}
	raws, err := events.Examples("examples/raw")
	require.NoError(t, err)

	t.Run("unknown TAC and operator are marked unknown", func(t *testing.T) {
		var raw event.Raw
		require.NoError(t, json.Unmarshal(raws["call_attempt.json"], &raw))
		raw.TAC, raw.MCC, raw.MNC = "00000017", "100", "99"
		msg, err := json.Marshal(&raw)
		require.NoError(t, err)
		res := Enrich(table, msg, src, now)
		require.Equal(t, Enriched, res.Outcome)
		require.True(t, res.TACUnknown)
		require.True(t, res.OperatorUnknown)
		var got event.Enriched
		require.NoError(t, json.Unmarshal(res.Value, &got))
		require.Empty(t, got.Manufacturer)
		require.Nil(t, got.MiniPhone, "unknown, not false")
		require.Empty(t, got.Operator)
		require.Equal(t, "cp-aix-luynes", got.FacilityID)
	})

	dlqTests := []struct {
		name    string
		msg     []byte
		outcome Outcome
		reason  string
		key     string
	}{
		{"unknown sensor", bytes.Replace(raws["call_attempt.json"], []byte("cp-aix-luynes-mas-01"), []byte("cp-aix-luynes-mas-99"), 1),
			UnknownSensor, event.ReasonUnknownSensor, "cp-aix-luynes-mas-99"},
		{"not JSON", []byte("imei 356938035643809 seen"), Undecodable, event.ReasonDecodeFailed, ""},
		{"wrong type", []byte(`{"event_id":"e1","sensor_id":"ma-nice-mas-01","observed_at":"2026-11-25T09:00:00.000Z","kind":"rf_burst","received_at":"2026-11-25T09:00:01.000Z","rssi_dbm":"loud"}`),
			Undecodable, event.ReasonDecodeFailed, "ma-nice-mas-01"},
		{"missing sensor", []byte(`{"event_id":"e1","observed_at":"2026-11-25T09:00:00.000Z","kind":"rf_burst","received_at":"2026-11-25T09:00:01.000Z"}`),
			Undecodable, event.ReasonDecodeFailed, ""},
	}
	for _, tt := range dlqTests {
		t.Run(tt.name, func(t *testing.T) {
			res := Enrich(table, tt.msg, src, now)
			require.Equal(t, tt.outcome, res.Outcome)
			require.Equal(t, tt.key, string(res.Key))
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.Value))
			require.NoError(t, err)
			require.NoError(t, dlqSchema.Validate(doc), string(res.Value))
			var rec event.DLQ
			require.NoError(t, json.Unmarshal(res.Value, &rec))
			require.Equal(t, tt.reason, rec.Reason)
			require.Equal(t, Service, rec.Service)
			require.Equal(t, &src, rec.Source)
			require.Equal(t, &event.Body{Bytes: len(tt.msg)}, rec.Body, "the message by its size and position only")
			require.NotContains(t, string(res.Value), "observed_at", "no field of the message")
			require.NotContains(t, string(res.Value), "356938035643809")
		})
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkEnrich measures enrichment alone (decode, lookups, encode) over a realistic mix
// of events, with 200 facilities × 50 sensors and 100,000 TACs loaded.
func BenchmarkEnrich(b *testing.B) {
	fsys, err := reftest.FS(reftest.Options{Facilities: 200, SensorsPerFacility: 50, TACs: 100000, Seed: 1})
	require.NoError(b, err)
	snap, err := reference.Load(fsys)
	require.NoError(b, err)
	msgs, err := reftest.Marshal(reftest.Events(snap, 10000, 1))
	require.NoError(b, err)
	now := event.NewTime(time.Now())
	table := Compile(snap)
	var bytesIn int
	for _, m := range msgs {
		bytesIn += len(m)
	}
	b.SetBytes(int64(bytesIn / len(msgs)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	i := 0
	for b.Loop() {
		res := Enrich(table, msgs[i%len(msgs)], event.Source{}, now)
		if res.Outcome != Enriched {
			b.Fatal(string(res.Value))
		}
		i++
	}
	// The machine is shared: events per second of CPU the process used (GC included) is
	// the per-core figure; wall-clock ns/op depends on the neighbours.
	b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "events/cpu-s")
}

// cpuTime is the user+system CPU time of the process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestEnrichGenerated checks, over a generated stream of every kind, that the enriched
// message is a valid enriched event whose raw part is the raw event and whose enrichment is
// what the reference says.
func TestEnrichGenerated(t *testing.T) {
	fsys, err := reftest.FS(reftest.Options{Seed: 3})
	require.NoError(t, err)
	snap, err := reference.Load(fsys)
	require.NoError(t, err)
	table := Compile(snap)
	schema, err := events.Compile(events.EnrichedSchemaFile)
	require.NoError(t, err)
	raws := reftest.Events(snap, 3000, 5)
	msgs, err := reftest.Marshal(raws)
	require.NoError(t, err)
	now := event.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	kinds := map[event.Kind]int{}
	unknownTAC := 0
	for i, msg := range msgs {
		res := Enrich(table, msg, event.Source{}, now)
		require.Equal(t, Enriched, res.Outcome)
		if i < 500 {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.Value))
			require.NoError(t, err)
			require.NoError(t, schema.Validate(doc), string(res.Value))
		}
		var got event.Enriched
		dec := json.NewDecoder(bytes.NewReader(res.Value))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&got), string(res.Value))
		sensor, _ := snap.Sensor(raws[i].SensorID)
		want := raws[i]
		if want.Zone == "" {
			want.Zone = sensor.Zone
		}
		require.Equal(t, want, got.Raw)
		require.Equal(t, raws[i].DeviceKey(), got.Enrichment.DeviceKey)
		require.Equal(t, sensor.FacilityID, got.FacilityID)
		require.Equal(t, sensor.Facility.Lat, *got.FacilityLat)
		require.Equal(t, string(sensor.Type), got.SensorType)
		if m, ok := snap.Model(raws[i].TAC); ok {
			require.Equal(t, m.Model, got.Model)
			require.Equal(t, m.Mini, *got.MiniPhone)
		} else if raws[i].TAC != "" {
			require.True(t, res.TACUnknown)
			unknownTAC++
		}
		kinds[raws[i].Kind]++
	}
	for _, k := range event.Kinds {
		require.Positive(t, kinds[k], "kind %s generated", k)
	}
	require.Positive(t, unknownTAC)
}

func TestEnrichRefusesEnrichedInput(t *testing.T) {
	table := Compile(exampleSnapshot(t))
	raws, err := events.Examples("examples/raw")
	require.NoError(t, err)
	now := event.NewTime(time.Now())
	first := Enrich(table, raws["rf_burst.json"], event.Source{}, now)
	require.Equal(t, Enriched, first.Outcome)
	again := Enrich(table, first.Value, event.Source{}, now)
	require.Equal(t, Undecodable, again.Outcome)
	require.Contains(t, string(again.Value), "already carries enrichment fields")
}

// FuzzEnrich feeds arbitrary messages: Enrich never panics, and whatever it produces is
// valid JSON of the right shape.
func FuzzEnrich(f *testing.F) {
	table := Compile(exampleSnapshot(f))
	raws, err := events.Examples("examples/raw")
	require.NoError(f, err)
	for _, b := range raws {
		f.Add(b)
	}
	f.Add([]byte(`{"event_id":"e","sensor_id":"ma-nice-mas-01","observed_at":"2026-11-25T09:00:00Z","kind":"rf_burst","received_at":"2026-11-25T09:00:00Z"}  `))
	f.Add([]byte(`{}`))
	now := event.NewTime(time.Now())
	f.Fuzz(func(t *testing.T, msg []byte) {
		res := Enrich(table, msg, event.Source{}, now)
		switch res.Outcome {
		case Enriched:
			var got event.Enriched
			if err := json.Unmarshal(res.Value, &got); err != nil {
				t.Fatalf("enriched output is not an enriched event: %v\n%s", err, res.Value)
			}
			if got.FacilityID == "" || got.Enrichment.DeviceKey == "" {
				t.Fatalf("enriched output lacks enrichment: %s", res.Value)
			}
		default:
			var rec event.DLQ
			if err := json.Unmarshal(res.Value, &rec); err != nil || rec.Reason == "" {
				t.Fatalf("dead letter is not a DLQ record: %v\n%s", err, res.Value)
			}
		}
	})
}
