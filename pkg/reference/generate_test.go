package reference

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite schemas/reference/sensors.csv from the generator")

// DefaultSensorsSeed is the seed of the checked-in sensors.csv.
const defaultSensorsSeed = 1

// TestDefaultSensorsFile checks that the checked-in sensors.csv is what the generator makes
// from the checked-in facilities; `go test ./reference -run TestDefaultSensorsFile -update`
// rewrites it.
func TestDefaultSensorsFile(t *testing.T) {
	facData, err := os.ReadFile(filepath.Join(defaultDir, FacilitiesFile))
	require.NoError(t, err)
	_, facilities, err := parseFacilities(facData)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteSensorsCSV(&buf, GenerateSensors(facilities, GenerateOptions{Seed: defaultSensorsSeed})))
	path := filepath.Join(defaultDir, SensorsFile)
	if *update {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, buf.String(), string(got), "sensors.csv is stale: run go test ./reference -run TestDefaultSensorsFile -update")
}

func TestGenerateSensors(t *testing.T) {
	s, err := LoadDir(defaultDir)
	require.NoError(t, err)
	facilities := s.Facilities()

	tests := []struct {
		name string
		opt  GenerateOptions
	}{
		{"realistic", GenerateOptions{Seed: 7}},
		{"fixed 50", GenerateOptions{Seed: 7, PerFacility: 50}},
		{"fixed 3", GenerateOptions{Seed: 3, PerFacility: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := GenerateSensors(facilities, tt.opt)
			b := GenerateSensors(facilities, tt.opt)
			require.Equal(t, a, b, "deterministic")

			perFacility := map[string]map[SensorType]int{}
			for _, sensor := range a {
				if perFacility[sensor.FacilityID] == nil {
					perFacility[sensor.FacilityID] = map[SensorType]int{}
				}
				perFacility[sensor.FacilityID][sensor.Type]++
			}
			require.Len(t, perFacility, len(facilities))
			withDrone, withMAS := 0, 0
			for id, types := range perFacility {
				total := 0
				for _, n := range types {
					total += n
				}
				if tt.opt.PerFacility > 0 {
					require.Equal(t, tt.opt.PerFacility, total, id)
				} else {
					require.Equal(t, 1, types[SensorSearchReport], id)
					require.GreaterOrEqual(t, types[SensorRF], 3, id)
				}
				if types[SensorDrone] > 0 {
					withDrone++
				}
				if types[SensorMAS] > 0 {
					withMAS++
				}
			}
			if tt.opt.PerFacility == 0 {
				require.InDelta(t, 49, withDrone, 25, "about 49 sites with anti-drone systems")
				require.Greater(t, withMAS, 30)
			}

			// What the generator writes, the loader reads back.
			var buf bytes.Buffer
			require.NoError(t, WriteSensorsCSV(&buf, a))
			fsys := fstest.MapFS{}
			for _, name := range Files {
				data, err := os.ReadFile(filepath.Join(defaultDir, name))
				require.NoError(t, err)
				fsys[name] = &fstest.MapFile{Data: data}
			}
			fsys[SensorsFile] = &fstest.MapFile{Data: buf.Bytes()}
			loaded, err := Load(fsys)
			require.NoError(t, err)
			require.Equal(t, len(a), loaded.Stats().Sensors)
			got, ok := loaded.Sensor(a[0].ID)
			require.True(t, ok)
			require.Equal(t, a[0], *got)
		})
	}
}

func TestGenerateStableAcrossFacilitySets(t *testing.T) {
	s, err := LoadDir(defaultDir)
	require.NoError(t, err)
	all := s.Facilities()
	full := GenerateSensors(all, GenerateOptions{Seed: 1})
	one := GenerateSensors(all[5:6], GenerateOptions{Seed: 1})
	var fromFull []Sensor
	for _, sensor := range full {
		if sensor.FacilityID == all[5].ID {
			fromFull = append(fromFull, sensor)
		}
	}
	require.Equal(t, fromFull, one, "a facility's sensors do not depend on the other facilities")
}
