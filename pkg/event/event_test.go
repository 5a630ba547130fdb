package event_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/schemas/events"
)

var update = flag.Bool("update", false, "regenerate schemas/events/examples/{raw,enriched} from the detector examples")

// TestExamples validates every example of the contract against its schema and round-trips
// it through the Go model: decoding with unknown fields disallowed, then encoding, must give
// back the same JSON document.
func TestExamples(t *testing.T) {
	for _, tc := range []struct {
		schema, dir string
		newValue    func() any
	}{
		{events.DetectorSchemaFile, "examples", func() any { return new(event.Detector) }},
		{events.RawSchemaFile, "examples/raw", func() any { return new(event.Raw) }},
		{events.EnrichedSchemaFile, "examples/enriched", func() any { return new(event.Enriched) }},
		{events.DLQSchemaFile, "examples/dlq", func() any { return new(event.DLQ) }},
		{events.AlertSchemaFile, "examples/alert", func() any { return new(event.Alert) }},
	} {
		s, err := events.Compile(tc.schema)
		require.NoError(t, err)
		ex, err := events.Examples(tc.dir)
		require.NoError(t, err)
		require.NotEmpty(t, ex, tc.dir)
		for name, data := range ex {
			t.Run(tc.dir+"/"+name, func(t *testing.T) {
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
				require.NoError(t, err)
				require.NoError(t, s.Validate(doc))

				v := tc.newValue()
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.DisallowUnknownFields()
				require.NoError(t, dec.Decode(v))
				out, err := json.Marshal(v)
				require.NoError(t, err)
				require.JSONEq(t, string(data), string(out))
			})
		}
	}
}

// TestEveryKindHasAnExample keeps the examples complete as kinds are added.
func TestEveryKindHasAnExample(t *testing.T) {
	ex, err := events.Examples("examples")
	require.NoError(t, err)
	seen := map[event.Kind]bool{}
	for _, data := range ex {
		var d event.Detector
		require.NoError(t, json.Unmarshal(data, &d))
		seen[d.Kind] = true
	}
	for _, k := range event.Kinds {
		require.True(t, seen[k], "no example of kind %s", k)
	}
}

func exampleKeyring(t *testing.T) *pseudonym.Keyring {
	secret := sha256.Sum256([]byte("vigie example key, not a real one"))
	block := sha256.Sum256([]byte("vigie example block key, not a real one"))
	k, err := pseudonym.NewKeyring("k2026a", []pseudonym.Key{{Version: "k2026a", Secret: secret[:]}}, block[:], "33")
	require.NoError(t, err)
	return k
}

// TestRawExamplesMatchPseudonymisation checks (or with -update writes) the raw examples:
// each is ToRaw of the detector example of the same name with the example key.
func TestRawExamplesMatchPseudonymisation(t *testing.T) {
	p := exampleKeyring(t).Active()
	det, err := events.Examples("examples")
	require.NoError(t, err)
	for name, data := range det {
		var d event.Detector
		require.NoError(t, json.Unmarshal(data, &d))
		r, err := d.ToRaw(p, event.NewTime(d.ObservedAt.Add(1500*time.Millisecond)))
		require.NoError(t, err)
		got, err := json.MarshalIndent(r, "", "  ")
		require.NoError(t, err)
		got = append(got, '\n')
		for _, clear := range []string{d.IMEI, d.IMSI, d.MSISDNDialed} {
			if clear != "" {
				require.NotContains(t, string(got), clear)
			}
		}
		path := filepath.Join(schemaDir(t), "examples", "raw", name)
		if *update {
			require.NoError(t, os.WriteFile(path, got, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "run go test -run TestRawExamples -update")
		require.JSONEq(t, string(want), string(got), name)
	}
}

// enrichment is what the enricher would add for the example sensors and devices.
func enrichment(r *event.Raw) event.Enrichment {
	f := func(v float64) *float64 { return &v }
	b := func(v bool) *bool { return &v }
	e := event.Enrichment{DeviceKey: r.DeviceKey(), EnrichedAt: event.NewTime(r.ReceivedAt.Add(40 * time.Millisecond))}
	facility := strings.Join(strings.Split(r.SensorID, "-")[:len(strings.Split(r.SensorID, "-"))-1], "-")
	switch {
	case strings.HasPrefix(r.SensorID, "cp-aix-luynes"):
		facility = "cp-aix-luynes"
		e.FacilityName, e.FacilityType, e.DISP, e.RegionCode, e.DepartmentCode, e.DepartmentName = "Centre pénitentiaire d'Aix-Luynes", "CP", "Marseille", "93", "13", "Bouches-du-Rhône"
		e.FacilityLat, e.FacilityLon = f(43.5263), f(5.4454)
	case strings.HasPrefix(r.SensorID, "cp-marseille"):
		facility = "cp-marseille"
		e.FacilityName, e.FacilityType, e.DISP, e.RegionCode, e.DepartmentCode, e.DepartmentName = "Centre pénitentiaire de Marseille", "CP", "Marseille", "93", "13", "Bouches-du-Rhône"
		e.FacilityLat, e.FacilityLon = f(43.2965), f(5.3698)
	case strings.HasPrefix(r.SensorID, "ma-nice"):
		facility = "ma-nice"
		e.FacilityName, e.FacilityType, e.DISP, e.RegionCode, e.DepartmentCode, e.DepartmentName = "Maison d'arrêt de Nice", "MA", "Marseille", "93", "06", "Alpes-Maritimes"
		e.FacilityLat, e.FacilityLon = f(43.7031), f(7.2661)
	case strings.HasPrefix(r.SensorID, "ma-grasse"):
		facility = "ma-grasse"
		e.FacilityName, e.FacilityType, e.DISP, e.RegionCode, e.DepartmentCode, e.DepartmentName = "Maison d'arrêt de Grasse", "MA", "Marseille", "93", "06", "Alpes-Maritimes"
		e.FacilityLat, e.FacilityLon = f(43.6589), f(6.9237)
	case strings.HasPrefix(r.SensorID, "cd-salon-de-provence"):
		facility = "cd-salon-de-provence"
		e.FacilityName, e.FacilityType, e.DISP, e.RegionCode, e.DepartmentCode, e.DepartmentName = "Centre de détention de Salon-de-Provence", "CD", "Marseille", "93", "13", "Bouches-du-Rhône"
		e.FacilityLat, e.FacilityLon = f(43.6403), f(5.0970)
	}
	e.FacilityID = facility
	switch {
	case strings.Contains(r.SensorID, "-mas-"):
		e.SensorType, e.Vendor, e.Building, e.ZoneType = "mas", "Tecore", "bat-b", "cell_block"
	case strings.Contains(r.SensorID, "-rf-"):
		e.SensorType, e.Vendor, e.Building, e.ZoneType = "rf_detector", "Cellbusters", "bat-c", "cell_block"
	case strings.Contains(r.SensorID, "-drone-"):
		e.SensorType, e.Vendor, e.ZoneType = "drone_detector", "Dedrone", "perimeter"
	case strings.Contains(r.SensorID, "-jam-"):
		e.SensorType, e.Vendor, e.Building, e.ZoneType = "jammer", "Stanley", "bat-a", "cell_block"
	default:
		e.SensorType = "search_report"
	}
	switch r.TAC {
	case "35828802":
		e.Manufacturer, e.Model, e.MiniPhone = "AIEK/AEKU", "V8", b(true)
	case "35928060":
		e.Manufacturer, e.Model, e.MiniPhone = "AIEK/AEKU", "M5", b(true)
	}
	switch r.MCC + "/" + r.MNC {
	case "208/15":
		e.Operator, e.Brand, e.Country = "Free Mobile", "Free", "FR"
	case "208/10":
		e.Operator, e.Brand, e.Country = "Société française du radiotéléphone (SFR)", "SFR", "FR"
	case "310/260":
		e.Operator, e.Brand, e.Country = "T-Mobile USA", "T-Mobile", "US"
	}
	return e
}

// TestEnrichedExamples checks (or with -update writes) the enriched examples from the raw
// ones, so that the enricher engineer has a document of every kind to test against.
func TestEnrichedExamples(t *testing.T) {
	raw, err := events.Examples("examples/raw")
	require.NoError(t, err)
	names := make([]string, 0, len(raw))
	for n := range raw {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		var r event.Raw
		require.NoError(t, json.Unmarshal(raw[name], &r))
		en := event.Enriched{Raw: r, Enrichment: enrichment(&r)}
		got, err := json.MarshalIndent(en, "", "  ")
		require.NoError(t, err)
		got = append(got, '\n')
		path := filepath.Join(schemaDir(t), "examples", "enriched", name)
		if *update {
			require.NoError(t, os.WriteFile(path, got, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "run go test -run TestEnrichedExamples -update")
		require.JSONEq(t, string(want), string(got), name)
	}
}

func TestDeviceKey(t *testing.T) {
	for _, tc := range []struct {
		r    event.Raw
		want string
	}{
		{event.Raw{Common: event.Common{SensorID: "s1"}, Pseudonyms: event.Pseudonyms{IMEIPseudo: "aa", IMSIPseudo: "bb"}}, "aa"},
		{event.Raw{Common: event.Common{SensorID: "s1"}, Pseudonyms: event.Pseudonyms{IMSIPseudo: "bb"}}, "bb"},
		{event.Raw{Common: event.Common{SensorID: "s1"}}, "sensor:s1"},
	} {
		require.Equal(t, tc.want, tc.r.DeviceKey())
	}
}

func TestTime(t *testing.T) {
	var tm event.Time
	require.NoError(t, json.Unmarshal([]byte(`"2026-11-25T10:14:07.125+01:00"`), &tm))
	out, err := json.Marshal(tm)
	require.NoError(t, err)
	require.Equal(t, `"2026-11-25T09:14:07.125Z"`, string(out))
	require.Error(t, json.Unmarshal([]byte(`"yesterday"`), &tm))
	require.Error(t, json.Unmarshal([]byte(`12`), &tm))
}

func schemaDir(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", "..", "schemas", "events"))
	require.NoError(t, err)
	return abs
}
