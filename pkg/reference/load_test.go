package reference

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// defaultDir is the checked-in reference data, relative to this package.
const defaultDir = "../../schemas/reference"

const (
	fixtureFacilities = "facility_id,name,type_code,city,department_code,department_name,disp,lat,lon,capacity\n" +
		"ma-a,Maison d'arrêt de A,MA,A,01,Ain,Lyon,46.2,5.2,\n" +
		"cp-b,Centre pénitentiaire de B,CP,B,75,Paris,Paris,48.85,2.35,800\n" +
		"csl-c,Centre de semi-liberté de C,CSL,C,976,Mayotte,Outre-mer,,,\n"
	fixtureSensors = "sensor_id,facility_id,building,floor,zone_type,zone,x_m,y_m,sensor_type,vendor\n" +
		"ma-a.rf-001,ma-a,A,1,cell_block,A-1,-10.5,3,rf_detector,rf-vendor-a\n" +
		"cp-b.mas-001,cp-b,visiting,0,visiting_room,visiting,0,-120,mas,mas-vendor-a\n"
	fixtureTAC = "tac,manufacturer,model,mini_phone_candidate_derived,tac_has_conflicting_rows\n" +
		"35828802,AIEK/AEKU,V8,yes,\n" +
		"33205600,Sagem,DMC 830,,yes\n" +
		"33205600,Sagem,M314-B0,,yes\n" +
		"01020100,Siemens,SL55,,\n"
	fixtureOperators = "mcc,mnc,country_iso,country_name,brand,operator,status\n" +
		"208,01,FR,France,Orange,Orange S.A.,Operational\n" +
		"310,150,US,United States,AT&T,AT&T Mobility,Operational\n" +
		"270,77,BE,Belgium,,Proximus Luxembourg S.A.,Unknown\n" +
		"270,77,LU,Luxembourg,Tango,Tango SA,Operational\n" +
		"208,50144,FR,France,,private network,Operational\n"
)

func fixture(overrides map[string]string) fstest.MapFS {
	files := map[string]string{
		FacilitiesFile: fixtureFacilities,
		SensorsFile:    fixtureSensors,
		TACFile:        fixtureTAC,
		OperatorsFile:  fixtureOperators,
	}
	for k, v := range overrides {
		files[k] = v
	}
	fsys := fstest.MapFS{}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return fsys
}

func TestLoadFixture(t *testing.T) {
	s, err := Load(fixture(nil))
	require.NoError(t, err)
	require.Equal(t, Stats{Facilities: 3, Sensors: 2, TACs: 3, Operators: 3, NonStandardMNC: 1}, s.Stats())

	sensor, ok := s.Sensor("ma-a.rf-001")
	require.True(t, ok)
	require.Equal(t, "Lyon", sensor.Facility.DISP)
	require.Equal(t, ZoneCellBlock, sensor.ZoneType)
	require.Equal(t, -10.5, sensor.X)

	f, ok := s.Facility("csl-c")
	require.True(t, ok)
	require.False(t, f.HasCoords)
	cp, _ := s.Facility("cp-b")
	require.Equal(t, 800, cp.Capacity)

	m, ok := s.Model("35828802")
	require.True(t, ok)
	require.True(t, m.Mini)
	m, ok = s.Model("33205600")
	require.True(t, ok)
	require.Equal(t, "DMC 830", m.Model, "first of conflicting rows wins")
	_, ok = s.Model("3582880")
	require.False(t, ok)

	o, ok := s.Operator("270", "77")
	require.True(t, ok)
	require.Equal(t, "Tango", o.DisplayName(), "operational row preferred")
	o, ok = s.OperatorForIMSI("310150")
	require.True(t, ok)
	require.Equal(t, "AT&T", o.Brand)
	o, ok = s.OperatorForIMSI("208019")
	require.True(t, ok)
	require.Equal(t, "Orange", o.Brand)
	_, ok = s.Operator("208", "001")
	require.False(t, ok, "MNC 001 differs from 01")

	_, ok = s.DistanceKm("ma-a", "csl-c")
	require.False(t, ok)
	km, ok := s.DistanceKm("ma-a", "cp-b")
	require.True(t, ok)
	require.InDelta(t, 364, km, 5)

	again, err := Load(fixture(nil))
	require.NoError(t, err)
	require.Equal(t, s.Version(), again.Version())
	changed, err := Load(fixture(map[string]string{TACFile: fixtureTAC + "12345678,X,Y,,\n"}))
	require.NoError(t, err)
	require.NotEqual(t, s.Version(), changed.Version())
}

func TestLoadErrors(t *testing.T) {
	replaceLine := func(content string, line int, with string) string {
		lines := strings.Split(content, "\n")
		lines[line-1] = with
		return strings.Join(lines, "\n")
	}
	tests := []struct {
		name string
		file string
		data string
		want string
		line int
		col  int
	}{
		{"missing file", SensorsFile, "", "sensors.csv:1: file is empty", 1, 0},
		{"missing column", FacilitiesFile, "facility_id,name\nx,y\n", "facilities.csv:1: header lacks required column(s) type_code", 1, 0},
		{"bad lat", FacilitiesFile, replaceLine(fixtureFacilities, 3, "cp-b,B,CP,B,75,Paris,Paris,north,2.35,"),
			`facilities.csv:3:8 (column lat): "north" is not a number between -90 and 90`, 3, 8},
		{"lat without lon", FacilitiesFile, replaceLine(fixtureFacilities, 3, "cp-b,B,CP,B,75,Paris,Paris,48,,"),
			"facilities.csv:3:9 (column lon): lat and lon must both be set", 3, 9},
		{"duplicate facility", FacilitiesFile, fixtureFacilities + "ma-a,X,MA,A,01,Ain,Lyon,1,1,\n",
			`facilities.csv:5:1 (column facility_id): "ma-a" is already defined on line 2`, 5, 1},
		{"bad capacity", FacilitiesFile, replaceLine(fixtureFacilities, 3, "cp-b,B,CP,B,75,Paris,Paris,48,2,lots"),
			`facilities.csv:3:10 (column capacity): "lots" is not an integer`, 3, 10},
		{"unknown facility", SensorsFile, fixtureSensors + "zz.rf-1,zz,A,0,yard,y,0,0,rf_detector,v\n",
			`sensors.csv:4:2 (column facility_id): unknown facility "zz"`, 4, 2},
		{"bad zone type", SensorsFile, fixtureSensors + "ma-a.rf-2,ma-a,A,0,kitchen,k,0,0,rf_detector,v\n",
			`sensors.csv:4:5 (column zone_type): "kitchen" is not a zone type (one of cell_block, yard, visiting_room, perimeter, workshop)`, 4, 5},
		{"bad sensor type", SensorsFile, fixtureSensors + "ma-a.rf-2,ma-a,A,0,yard,k,0,0,camera,v\n",
			`sensors.csv:4:9 (column sensor_type): "camera" is not a sensor type (one of mas, rf_detector, drone_detector, jammer, search_report, other)`, 4, 9},
		{"missing position", SensorsFile, fixtureSensors + "ma-a.rf-2,ma-a,A,0,yard,k,,0,rf_detector,v\n",
			"sensors.csv:4:7 (column x_m): x_m and y_m are required", 4, 7},
		{"duplicate sensor", SensorsFile, fixtureSensors + "ma-a.rf-001,ma-a,A,0,yard,k,0,0,rf_detector,v\n",
			`sensors.csv:4:1 (column sensor_id): "ma-a.rf-001" is already defined on line 2`, 4, 1},
		{"empty vendor", SensorsFile, fixtureSensors + "ma-a.rf-2,ma-a,A,0,yard,k,0,0,rf_detector,\n",
			"sensors.csv:4:10 (column vendor): value is empty", 4, 10},
		{"short TAC", TACFile, fixtureTAC + "1234567,X,Y,,\n", `tac.csv:6:1 (column tac): "1234567" is not a TAC`, 6, 1},
		{"duplicate TAC", TACFile, fixtureTAC + "01020100,X,Y,,\n", "tac.csv:6:1 (column tac): TAC 01020100 is already defined on line 5", 6, 1},
		{"bad mini flag", TACFile, fixtureTAC + "12345678,X,Y,maybe,\n", `tac.csv:6:4 (column mini_phone_candidate_derived): "maybe" is not yes or no`, 6, 4},
		{"bad MCC", OperatorsFile, fixtureOperators + "20,01,FR,France,B,O,Operational\n", `mcc_mnc.csv:7:1 (column mcc): "20" is not an MCC`, 7, 1},
		{"stray quote", OperatorsFile, fixtureOperators + "208,02,FR,\"Fra\"nce,B,O,x\n", "mcc_mnc.csv:7:15: extraneous or missing \" in quoted-field", 7, 15},
		{"wrong field count", OperatorsFile, fixtureOperators + "208,02,FR\n", "mcc_mnc.csv:7:1: wrong number of fields", 7, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(fixture(map[string]string{tt.file: tt.data}))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.want)
			var re *Error
			require.True(t, errors.As(err, &re))
			require.Equal(t, tt.file, re.File)
			require.Equal(t, tt.line, re.Line)
			require.Equal(t, tt.col, re.Column)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	fsys := fixture(nil)
	delete(fsys, TACFile)
	_, err := Load(fsys)
	require.ErrorContains(t, err, "tac.csv: read: open tac.csv: file does not exist")
}

func TestLoadDefaultData(t *testing.T) {
	s, err := LoadDir(defaultDir)
	require.NoError(t, err)
	st := s.Stats()
	require.Equal(t, 176, st.Facilities)
	require.Equal(t, 22524, st.TACs, "22,525 rows, one TAC listed twice")
	require.Greater(t, st.Sensors, 176*10)
	require.Greater(t, st.Operators, 3000)

	m, ok := s.Model("86741801")
	require.True(t, ok)
	require.Equal(t, "GTStar", m.Manufacturer)
	require.True(t, m.Mini)
	o, ok := s.Operator("208", "01")
	require.True(t, ok)
	require.Equal(t, "FR", o.CountryISO)

	km, ok := s.DistanceKm("cp-bourg-en-bresse", "cp-laon")
	require.True(t, ok)
	require.InDelta(t, 394, km, 5)
	for _, f := range s.Facilities() {
		require.True(t, f.HasCoords, f.ID)
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := LoadDir(defaultDir); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHasZone: a facility's zones are those of its sensors, and no other facility's.
func TestHasZone(t *testing.T) {
	snap, err := Load(fixture(nil))
	require.NoError(t, err)
	require.True(t, snap.HasZone("ma-a", "A-1"))
	require.True(t, snap.HasZone("cp-b", "visiting"))
	require.False(t, snap.HasZone("cp-b", "A-1"), "another facility's zone")
	require.False(t, snap.HasZone("ma-a", "John Smith's cell"))
	require.False(t, snap.HasZone("no-such-facility", "A-1"))
}
