package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/reftest"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/enricher/internal/chref"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// kafka-go keeps a shared connection pool goroutine per transport.
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreAnyFunction("github.com/segmentio/kafka-go.(*conn).run"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// TestEnrichEveryKind runs the enricher against the real broker on a stream holding every
// kind of event and checks each enriched event against the reference data, the message key
// and the order per device.
func TestEnrichEveryKind(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 11})
	events := reftest.Events(snap, 3000, 1)
	produceRaw(t, cfg, events)
	r := start(t, cfg)

	out := readTopic(t, cfg, cfg.Topics.Enriched, len(events), 60*time.Second, 500*time.Millisecond)
	got, dups := enrichedByID(t, out)
	require.Zero(t, dups, "no restart, no duplicate")
	require.Len(t, got, len(events))

	kinds := map[event.Kind]int{}
	for _, ev := range events {
		e, ok := got[ev.EventID]
		require.True(t, ok, ev.EventID)
		sensor, _ := snap.Sensor(ev.SensorID)
		f := sensor.Facility
		require.Equal(t, ev.Kind, e.Kind)
		require.Equal(t, ev.DeviceKey(), e.Enrichment.DeviceKey)
		require.Equal(t, f.ID, e.FacilityID)
		require.Equal(t, f.Name, e.FacilityName)
		require.Equal(t, f.DISP, e.DISP)
		require.Equal(t, f.DepartmentCode, e.DepartmentCode)
		require.Equal(t, string(sensor.ZoneType), e.ZoneType)
		require.Equal(t, string(sensor.Type), e.SensorType)
		if ev.Zone == "" {
			require.Equal(t, sensor.Zone, e.Zone)
		} else {
			require.Equal(t, ev.Zone, e.Zone)
		}
		if m, ok := snap.Model(ev.TAC); ok {
			require.Equal(t, m.Model, e.Model)
			require.Equal(t, m.Manufacturer, e.Manufacturer)
		} else {
			require.Empty(t, e.Model)
			require.Nil(t, e.MiniPhone)
		}
		if o, ok := snap.Operator(ev.MCC, ev.MNC); ok {
			require.Equal(t, o.Name, e.Operator)
		} else {
			require.Empty(t, e.Operator)
		}
		kinds[ev.Kind]++
	}
	for _, k := range event.Kinds {
		require.Positive(t, kinds[k], "kind %s in the stream", k)
	}

	// Order: a device's events from one sensor (one raw partition) keep their order, and
	// all of a device's events are on one enriched partition.
	index := map[string]int{}
	for i, ev := range events {
		index[ev.EventID] = i
	}
	last := map[string]int{}
	partitionOf := map[string]int{}
	for _, m := range out.msgs {
		var e event.Enriched
		require.NoError(t, json.Unmarshal(m.Value, &e))
		key := e.Enrichment.DeviceKey
		if p, ok := partitionOf[key]; ok {
			require.Equal(t, p, m.Partition, "device %s on one partition", key)
		}
		partitionOf[key] = m.Partition
		pair := key + "|" + e.SensorID
		if prev, ok := last[pair]; ok {
			require.Less(t, prev, index[e.EventID], "order of device %s from sensor %s", key, e.SensorID)
		}
		last[pair] = index[e.EventID]
		require.Equal(t, snap.Version(), string(m.Headers[0].Value))
	}
	require.Equal(t, float64(len(events)), metric(t, r.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"}))
	require.Positive(t, metric(t, r.reg, "vigie_enricher_unknown_tac_total", nil))
}

// TestUnknownSensorsToDLQ sends events of sensors that the reference does not know, and
// messages that are not raw events: they land in the DLQ with their reason and are counted,
// while the known ones are enriched.
func TestUnknownSensorsToDLQ(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 12})
	events := reftest.Events(snap, 400, 2)
	values, err := reftest.Marshal(events)
	require.NoError(t, err)
	unknown := 0
	for i := range events {
		if i%10 == 0 {
			events[i].SensorID = fmt.Sprintf("ma-nowhere.rf-%03d", i)
			b, err := json.Marshal(&events[i])
			require.NoError(t, err)
			values[i] = b
			unknown++
		}
	}
	events = append(events, event.Raw{Common: event.Common{SensorID: "garbage"}})
	values = append(values, []byte(`{"not":"an event"`))
	produceMessages(t, cfg, events, values)
	r := start(t, cfg)

	enriched := readTopic(t, cfg, cfg.Topics.Enriched, len(events)-unknown-1, 60*time.Second, 300*time.Millisecond)
	dlq := readTopic(t, cfg, cfg.Topics.DLQ, unknown+1, 30*time.Second, 300*time.Millisecond)
	require.Len(t, enriched.msgs, len(events)-unknown-1)
	require.Len(t, dlq.msgs, unknown+1)
	reasons := map[string]int{}
	for _, m := range dlq.msgs {
		var rec event.DLQ
		require.NoError(t, json.Unmarshal(m.Value, &rec))
		reasons[rec.Reason]++
		require.Equal(t, "enricher", rec.Service)
		require.Equal(t, cfg.Topics.Raw, rec.Source.Topic)
		if rec.Reason == event.ReasonUnknownSensor {
			require.True(t, strings.HasPrefix(rec.SensorID, "ma-nowhere."))
			require.Equal(t, rec.SensorID, string(m.Key))
			require.Positive(t, rec.Body.Bytes, "the message is known by its size and position, not copied")
			require.NotContains(t, string(m.Value), `"kind"`, "no field of the message in its dead letter")
		}
	}
	require.Equal(t, map[string]int{event.ReasonUnknownSensor: unknown, event.ReasonDecodeFailed: 1}, reasons)
	require.Equal(t, float64(unknown), metric(t, r.reg, "vigie_enricher_events_total", map[string]string{"outcome": "unknown_sensor"}))
	require.Equal(t, float64(1), metric(t, r.reg, "vigie_enricher_events_total", map[string]string{"outcome": "decode_failed"}))
}

// TestReloadUnderLoad rewrites the reference files while events stream through: a new
// sensor becomes known without a restart, a broken file is refused (the previous version
// stays, the error names file, line and column) and no event is lost.
func TestReloadUnderLoad(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 13})
	r := start(t, cfg)
	dir := cfg.Reference.Dir
	v1 := snap.Version()

	sensorsV1, err := os.ReadFile(filepath.Join(dir, reference.SensorsFile))
	require.NoError(t, err)
	newSensor := "cp-laon.rf-900"
	sensorsV2 := append(append([]byte(nil), sensorsV1...), []byte(newSensor+",cp-laon,A,1,cell_block,A-1,0,0,rf_detector,rf-vendor-a\n")...)
	v2 := versionWith(t, dir, reference.SensorsFile, sensorsV2)
	waitVersion := func(want string) {
		t.Helper()
		// The compiled table, which the pipeline uses, is swapped right after the snapshot.
		require.Eventually(t, func() bool { return r.e.tables.Load().Snapshot().Version() == want }, 10*time.Second, 5*time.Millisecond)
	}

	const rounds = 6
	const perRound = 1500
	var all []event.Raw
	for round := 0; round < rounds; round++ {
		batch := reftest.Events(snap, perRound, uint64(100+round))
		all = append(all, batch...)
		done := make(chan struct{})
		go func() {
			defer close(done)
			produceRaw(t, cfg, batch)
		}()
		// Reload while this round streams: alternate the two versions, and once a
		// broken file that must be refused.
		switch round {
		case 1, 3:
			rewriteFile(t, dir, reference.SensorsFile, sensorsV2)
			waitVersion(v2)
		case 2, 4:
			rewriteFile(t, dir, reference.SensorsFile, sensorsV1)
			waitVersion(v1)
		case 5:
			broken := append(append([]byte(nil), sensorsV2...), []byte("cp-laon.rf-901,cp-laon,A,1,kitchen,A-1,0,0,rf_detector,v\n")...)
			errorsBefore := metric(t, r.reg, "vigie_enricher_reference_reloads_total", map[string]string{"result": "error"})
			rewriteFile(t, dir, reference.SensorsFile, broken)
			require.Eventually(t, func() bool {
				return metric(t, r.reg, "vigie_enricher_reference_reloads_total", map[string]string{"result": "error"}) > errorsBefore
			}, 10*time.Second, 10*time.Millisecond)
			lastErr := r.e.store.LastError()
			require.ErrorContains(t, lastErr, `sensors.csv:`)
			require.ErrorContains(t, lastErr, `:5 (column zone_type): "kitchen" is not a zone type`)
			require.Equal(t, v1, r.e.store.Current().Version(), "the previous version stays in use")
		}
		<-done
		if round == 1 {
			// The new sensor is known once the reload is in: its events are enriched.
			waitVersion(v2)
			late := reftest.Events(snap, 10, 999)
			for i := range late {
				late[i].SensorID = newSensor
				late[i].EventID = fmt.Sprintf("late-%d", i)
				late[i].Kind = event.KindRFBurst
				late[i].Pseudonyms = event.Pseudonyms{}
				late[i].Drone, late[i].Jammer, late[i].Seizure = nil, nil, nil
			}
			produceRaw(t, cfg, late)
			all = append(all, late...)
			// Let them through before the next round takes the sensor away again.
			require.Eventually(t, func() bool {
				return metric(t, r.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"}) >= float64(len(all))
			}, 60*time.Second, 10*time.Millisecond)
		}
	}
	out := readTopic(t, cfg, cfg.Topics.Enriched, len(all), 90*time.Second, 500*time.Millisecond)
	got, dups := enrichedByID(t, out)
	require.Zero(t, dups)
	for _, ev := range all {
		e, ok := got[ev.EventID]
		require.True(t, ok, "event %s lost", ev.EventID)
		if ev.SensorID == newSensor {
			require.Equal(t, "cp-laon", e.FacilityID)
		}
	}
	require.Len(t, got, len(all))
	versions := map[string]bool{}
	for _, m := range out.msgs {
		versions[string(m.Headers[0].Value)] = true
	}
	require.Len(t, versions, 2, "events were enriched with both versions")
	require.GreaterOrEqual(t, metric(t, r.reg, "vigie_enricher_reference_reloads_total", map[string]string{"result": "ok"}), float64(2))
	require.Zero(t, metric(t, r.reg, "vigie_enricher_events_total", map[string]string{"outcome": "unknown_sensor"}))
}

// TestRestartMidStream stops the enricher gracefully in the middle of a stream and starts
// another: every event comes out (at-least-once), whatever was in flight.
func TestRestartMidStream(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 14})
	events := reftest.Events(snap, 8000, 3)
	produceRaw(t, cfg, events)

	first := start(t, cfg)
	require.Eventually(t, func() bool {
		return metric(t, first.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"}) >= 3000
	}, 60*time.Second, 5*time.Millisecond)
	first.stop(t)
	handled := metric(t, first.reg, "vigie_enricher_events_total", map[string]string{"outcome": "enriched"})
	require.Less(t, handled, float64(len(events)), "stopped mid-stream")

	start(t, cfg)
	out := readTopic(t, cfg, cfg.Topics.Enriched, len(events), 90*time.Second, time.Second)
	got, dups := enrichedByID(t, out)
	for _, ev := range events {
		_, ok := got[ev.EventID]
		require.True(t, ok, "event %s lost across the restart", ev.EventID)
	}
	t.Logf("first run enriched %.0f of %d; duplicates after restart: %d", handled, len(events), dups)
	require.Zero(t, dups, "a graceful stop commits what it produced")
}

// TestReferenceTablesInClickHouse starts the enricher with a ClickHouse address: the
// reference version in use appears in the analysts' tables, and a reload replaces it.
func TestReferenceTablesInClickHouse(t *testing.T) {
	cfg, snap := testConfig(t, reftest.Options{Seed: 17})
	cfg.ClickHouse.Addrs = []string{testenv.ClickHouseAddr(t)}
	cfg.ClickHouse.Database = migratedDatabase(t)
	r := start(t, cfg)
	require.NotNil(t, r.e.syncer)

	conn, err := clickhouse.Open(context.Background(), clickhouseConfig(t), zap.NewNop())
	require.NoError(t, err)
	defer conn.Close()
	versionIn := func(table string) string {
		var v string
		if err := conn.QueryRow(context.Background(), "SELECT toString(any(ref_version)) FROM `"+cfg.ClickHouse.Database+"`."+table).Scan(&v); err != nil {
			return "" // the local server sometimes drops a connection under load: ask again
		}
		return v
	}
	for _, table := range chref.Tables {
		require.Eventually(t, func() bool { return versionIn(table) == snap.Version() }, 60*time.Second, 50*time.Millisecond, table)
	}

	b, err := os.ReadFile(filepath.Join(cfg.Reference.Dir, reference.SensorsFile))
	require.NoError(t, err)
	rewriteFile(t, cfg.Reference.Dir, reference.SensorsFile, append(b, []byte("cp-laon.rf-950,cp-laon,A,1,cell_block,A-1,0,0,rf_detector,rf-vendor-a\n")...))
	require.Eventually(t, func() bool { return r.e.store.Current().Version() != snap.Version() }, 10*time.Second, 10*time.Millisecond)
	v2 := r.e.store.Current().Version()
	require.Eventually(t, func() bool { return versionIn("sensors") == v2 }, 60*time.Second, 50*time.Millisecond)
}
