package grafana

// Demo data for the dashboard tests: enriched detections over several facilities and days,
// inserted into detections (the materialized views fill the rollups from it), and a few
// correlation alerts. The facilities, sensors and phone models are the reference data's
// (schemas/reference); identifiers are pseudonyms only, as in production.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/testenv"
	refdata "github.com/vigie/vigie/schemas/reference"
)

// demoSpec sizes the demo data.
type demoSpec struct {
	Seed       uint64
	End        time.Time // events fall in [End-Days, End)
	Days       int
	Facilities int
	Phones     int
	Events     int
}

// demoData is what seedDemo inserted, for the tests' expectations.
type demoData struct {
	Facilities []string // ids, sorted
	Events     int
	Alerts     int
}

type demoPhone struct {
	imeiPseudo, imsiPseudo string
	tac, serialBlock       string
	model                  *reference.Model
	home                   int   // index into facilities
	visits                 []int // other facilities it is also seen at
}

// demoColumns is the explicit column list of the detections insert.
var demoColumns = []string{
	"event_id", "sensor_id", "kind", "observed_at", "received_at", "enriched_at", "written_at",
	"zone", "facility_id", "facility_name", "facility_type", "disp", "region_code",
	"department_code", "department_name", "facility_lat", "facility_lon",
	"building", "zone_type", "sensor_type", "vendor",
	"rat", "band", "rssi_dbm", "outcome", "duration_ms",
	"key_version", "imei_pseudo", "imsi_pseudo", "tac", "serial_block",
	"mcc", "mnc", "manufacturer", "model", "mini_phone", "operator", "brand", "country",
	"drone_source", "drone_alt_m", "drone_ua_type",
	"jammer_id", "jammer_alarm", "jammer_severity",
	"seized_phones", "seized_mini_phones", "seized_sims", "search_id", "found_by",
	"kafka_topic", "kafka_partition", "kafka_offset",
}

func pseudo(kind string, n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("vigie-demo-%s-%d", kind, n)))
	return hex.EncodeToString(sum[:])
}

// seedDemo inserts demo detections and alerts into database.
func seedDemo(ctx context.Context, t *testing.T, conn driver.Conn, database string, spec demoSpec) demoData {
	t.Helper()
	snap, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))

	// Facilities with coordinates and the sensors a phone and a drone can be seen by.
	type site struct {
		f      *reference.Facility
		phone  []*reference.Sensor // mas, rf_detector
		drone  []*reference.Sensor
		jammer []*reference.Sensor
		search []*reference.Sensor
	}
	bySite := map[string]*site{}
	for _, s := range snap.Sensors() {
		if !s.Facility.HasCoords {
			continue
		}
		st := bySite[s.FacilityID]
		if st == nil {
			st = &site{f: s.Facility}
			bySite[s.FacilityID] = st
		}
		switch s.Type {
		case reference.SensorMAS, reference.SensorRF:
			st.phone = append(st.phone, s)
		case reference.SensorDrone:
			st.drone = append(st.drone, s)
		case reference.SensorJammer:
			st.jammer = append(st.jammer, s)
		case reference.SensorSearchReport:
			st.search = append(st.search, s)
		}
	}
	var sites []*site
	for _, st := range bySite {
		if len(st.phone) > 0 && len(st.drone) > 0 && len(st.jammer) > 0 && len(st.search) > 0 {
			sites = append(sites, st)
		}
	}
	sort.Slice(sites, func(i, j int) bool { return sites[i].f.ID < sites[j].f.ID })
	require.GreaterOrEqual(t, len(sites), spec.Facilities, "reference data has too few equipped facilities")
	rng.Shuffle(len(sites), func(i, j int) { sites[i], sites[j] = sites[j], sites[i] })
	sites = sites[:spec.Facilities]
	sort.Slice(sites, func(i, j int) bool { return sites[i].f.ID < sites[j].f.ID })

	// Phone models: a few common ones and one "mini phone" model that spreads everywhere.
	var common, mini []*reference.Model
	for _, m := range snap.Models() {
		switch {
		case m.Mini:
			mini = append(mini, m)
		case strings.EqualFold(m.Manufacturer, "Samsung") || strings.EqualFold(m.Manufacturer, "Apple") || strings.EqualFold(m.Manufacturer, "Xiaomi"):
			common = append(common, m)
		}
	}
	require.NotEmpty(t, common)
	sort.Slice(common, func(i, j int) bool { return common[i].TAC < common[j].TAC })
	common = common[:min(len(common), 40)]
	spread := &reference.Model{TAC: "86099904", Manufacturer: "Unknown", Model: "mini phone (demo)", Mini: true}
	if len(mini) > 0 {
		sort.Slice(mini, func(i, j int) bool { return mini[i].TAC < mini[j].TAC })
		spread = mini[0]
	}

	phones := make([]demoPhone, spec.Phones)
	for i := range phones {
		p := demoPhone{imeiPseudo: pseudo("imei", i), imsiPseudo: pseudo("imsi", i), home: rng.IntN(len(sites))}
		if i%5 == 0 {
			p.model = spread
			p.serialBlock = "b10c417b10c417aa" // one shipment: one serial block (an id of the block key)
		} else {
			p.model = common[rng.IntN(len(common))]
			p.serialBlock = fmt.Sprintf("%016x", rng.IntN(1000))
		}
		p.tac = p.model.TAC
		if i%7 == 0 { // transferred inmates, phones passed between prisons, cloned IMEIs
			for range 1 + rng.IntN(2) {
				if v := rng.IntN(len(sites)); v != p.home {
					p.visits = append(p.visits, v)
				}
			}
		}
		phones[i] = p
	}

	start := spec.End.Add(-time.Duration(spec.Days) * 24 * time.Hour)
	span := spec.End.Sub(start)
	// A time in the range, weighted towards the night when contraband phones are used most.
	when := func() time.Time {
		for {
			at := start.Add(time.Duration(rng.Int64N(int64(span))))
			h := at.Hour()
			if h >= 21 || h < 6 || rng.IntN(3) == 0 {
				return at
			}
		}
	}

	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO `%s`.detections (%s)", database, strings.Join(demoColumns, ", ")))
	require.NoError(t, err)
	defer func() { _ = batch.Abort() }()

	offset := int64(0)
	add := func(kind event.Kind, st *site, sensor *reference.Sensor, at time.Time, p *demoPhone, extra map[string]any) {
		f := st.f
		row := map[string]any{
			"event_id": fmt.Sprintf("%s-%d", sensor.ID, offset), "sensor_id": sensor.ID, "kind": string(kind),
			"observed_at": at, "received_at": at.Add(300 * time.Millisecond), "enriched_at": at.Add(400 * time.Millisecond),
			"written_at": at.Add(time.Duration(600+rng.IntN(1500)) * time.Millisecond), "zone": sensor.Zone,
			"facility_id": f.ID, "facility_name": f.Name, "facility_type": f.TypeCode,
			"disp": f.DISP, "region_code": f.RegionCode, "department_code": f.DepartmentCode,
			"department_name": f.DepartmentName, "facility_lat": &f.Lat, "facility_lon": &f.Lon,
			"building": sensor.Building, "zone_type": string(sensor.ZoneType), "sensor_type": string(sensor.Type),
			"vendor": sensor.Vendor, "kafka_topic": event.TopicEnriched,
			"kafka_partition": uint16(offset % 6), "kafka_offset": offset,
		}
		if p != nil {
			rssi := -50 - float64(rng.IntN(50))
			mini := p.model.Mini
			row["rat"], row["band"], row["rssi_dbm"], row["outcome"] = "4G", "B20", &rssi, "blocked"
			row["key_version"], row["imei_pseudo"], row["imsi_pseudo"] = "k1", p.imeiPseudo, p.imsiPseudo
			row["tac"], row["serial_block"] = p.tac, p.serialBlock
			row["mcc"], row["mnc"], row["operator"], row["brand"], row["country"] = "208", "01", "Orange", "Orange", "FR"
			row["manufacturer"], row["model"], row["mini_phone"] = p.model.Manufacturer, p.model.Model, &mini
			if kind == event.KindCallAttempt {
				d := uint32(rng.IntN(120000))
				row["duration_ms"] = &d
			}
		}
		for k, v := range extra {
			row[k] = v
		}
		values := make([]any, len(demoColumns))
		for i, c := range demoColumns {
			values[i] = row[c]
			if values[i] == nil {
				values[i] = zeroOf(c)
			}
		}
		require.NoError(t, batch.Append(values...))
		offset++
	}

	phoneKinds := []event.Kind{event.KindMASAttach, event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt}
	for range spec.Events {
		p := &phones[rng.IntN(len(phones))]
		where := p.home
		if len(p.visits) > 0 && rng.IntN(3) == 0 {
			where = p.visits[rng.IntN(len(p.visits))]
		}
		st := sites[where]
		switch r := rng.IntN(100); {
		case r < 90:
			add(phoneKinds[rng.IntN(len(phoneKinds))], st, st.phone[rng.IntN(len(st.phone))], when(), p, nil)
		case r < 96:
			add(event.KindRFBurst, st, st.phone[rng.IntN(len(st.phone))], when(), nil, nil)
		case r < 98:
			alt := 40 + float64(rng.IntN(80))
			add(event.KindDroneSeen, st, st.drone[rng.IntN(len(st.drone))], when(), nil,
				map[string]any{"drone_source": "remote_id", "drone_alt_m": &alt, "drone_ua_type": "helicopter_or_multirotor"})
		case r < 99:
			add(event.KindJammerAlarm, st, st.jammer[rng.IntN(len(st.jammer))], when(), nil,
				map[string]any{"jammer_id": "jam-1", "jammer_alarm": "power_loss", "jammer_severity": "major"})
		default:
			add(event.KindItemSeized, st, st.search[rng.IntN(len(st.search))], when(), nil,
				map[string]any{"seized_phones": uint32(1 + rng.IntN(4)), "seized_mini_phones": uint32(rng.IntN(3)),
					"seized_sims": uint32(rng.IntN(5)), "search_id": fmt.Sprintf("search-%d", rng.IntN(50)), "found_by": "cell_search"})
		}
	}
	require.NoError(t, batch.Send())

	ids := make([]string, len(sites))
	for i, st := range sites {
		ids[i] = st.f.ID
	}
	alerts := seedAlerts(ctx, t, conn, database, spec, ids, phones, spread)
	return demoData{Facilities: ids, Events: spec.Events, Alerts: alerts}
}

// zeroOf is the value of a column the row does not set.
func zeroOf(column string) any {
	switch column {
	case "facility_lat", "facility_lon", "rssi_dbm", "drone_alt_m":
		return (*float64)(nil)
	case "duration_ms":
		return (*uint32)(nil)
	case "mini_phone":
		return (*bool)(nil)
	case "seized_phones", "seized_mini_phones", "seized_sims":
		return uint32(0)
	}
	return ""
}

// seedAlerts inserts findings of several rules, one of them in two versions (the correlator
// extends a finding by writing it again with a higher version).
func seedAlerts(ctx context.Context, t *testing.T, conn driver.Conn, database string, spec demoSpec,
	facilities []string, phones []demoPhone, spread *reference.Model) int {
	t.Helper()
	batch, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO `%s`.alerts (alert_id, rule, severity, group_key, facilities, "+
		"first_evidence_at, last_evidence_at, window_start, window_end, evidence_event_ids, evidence_count, explanation, "+
		"created_at, updated_at, version)", database))
	require.NoError(t, err)
	defer func() { _ = batch.Abort() }()
	start := spec.End.Add(-time.Duration(spec.Days) * 24 * time.Hour)
	n := 0
	add := func(id, rule, severity, key string, fs []string, first, last time.Time, explanation string, version uint64, updated time.Time) {
		created := first.Add(2 * time.Second) // never changes between versions
		require.NoError(t, batch.Append(id, rule, severity, key, fs, first, last, first.Add(-time.Hour), last,
			[]string{id + "-e1", id + "-e2"}, uint32(len(fs)*3), explanation, created, updated, version))
		n++
	}
	day := 24 * time.Hour
	t0 := start.Add(12 * time.Hour)
	// TAC_SPREAD on the mini phone model, extended a day later with more facilities.
	add("tac-spread-1", "TAC_SPREAD", "high", spread.TAC, facilities[:5], t0, t0.Add(day),
		fmt.Sprintf("TAC %s (%s) seen at 5 facilities", spread.TAC, spread.Model), 1, t0.Add(day))
	add("tac-spread-1", "TAC_SPREAD", "high", spread.TAC, facilities, t0, t0.Add(3*day),
		fmt.Sprintf("TAC %s (%s) seen at %d facilities", spread.TAC, spread.Model, len(facilities)), 2, t0.Add(3*day))
	add("batch-range-1", "BATCH_RANGE", "high", spread.TAC+"/417", facilities[:4], t0.Add(day), t0.Add(2*day),
		"devices of TAC "+spread.TAC+" with serials 417xxx at 4 facilities: one shipment", 1, t0.Add(2*day))
	for i, p := range phones {
		if len(p.visits) == 0 || n >= 8 {
			continue
		}
		fs := []string{facilities[p.home], facilities[p.visits[0]]}
		at := t0.Add(time.Duration(i%4) * day)
		add(fmt.Sprintf("multi-site-%d", i), "DEVICE_MULTI_SITE", "medium", p.imeiPseudo, fs, at, at.Add(6*time.Hour),
			"one phone seen at "+strings.Join(fs, " and "), 1, at.Add(6*time.Hour))
	}
	at := t0.Add(2 * day)
	add("impossible-travel-1", "IMPOSSIBLE_TRAVEL", "high", phones[7].imeiPseudo, []string{facilities[0], facilities[len(facilities)-1]},
		at, at.Add(40*time.Minute), "one phone at two facilities far apart within 40 minutes: cloned IMEI?", 1, at.Add(40*time.Minute))
	add("drone-new-1", "DRONE_THEN_NEW_DEVICE", "medium", facilities[1], []string{facilities[1]}, at, at.Add(3*time.Hour),
		"drone seen, then 3 phones new to the facility within 3 hours", 1, at.Add(3*time.Hour))
	// A recent one, for the pipeline dashboard's last hours.
	burst := spec.End.Add(-time.Hour)
	add("sync-burst-1", "SYNC_BURST", "high", burst.Truncate(10*time.Minute).Format(time.RFC3339), facilities[:6],
		burst, burst.Add(10*time.Minute), "call attempts above baseline at 6 facilities in the same 10 minutes", 1, burst.Add(10*time.Minute))
	require.NoError(t, batch.Send())
	return n
}

// openClickHouse connects to the local server on database with the settings the data source
// sends with every query.
func openClickHouse(t *testing.T, addr, database string, settings clickhouse.Settings) driver.Conn {
	t.Helper()
	user, password := testenv.ClickHouseUser() // the test migrates its own database: the administrator
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: database, Username: user, Password: password},
		Settings:    settings,
		DialTimeout: 10 * time.Second,
		ReadTimeout: 120 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
