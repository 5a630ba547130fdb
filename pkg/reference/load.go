package reference

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	facilityIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	sensorIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	typeCodePattern   = regexp.MustCompile(`^[A-Z]{1,8}$`)
)

// LoadDir loads the reference files from a directory.
func LoadDir(dir string) (*Snapshot, error) {
	return Load(os.DirFS(dir))
}

// Load reads and validates the four reference files of fsys (see Files) into a snapshot. The
// first problem found is returned as an *Error naming the file, line and column; nothing is
// half-loaded.
func Load(fsys fs.FS) (*Snapshot, error) {
	start := time.Now()
	contents := make(map[string][]byte, len(Files))
	sum := sha256.New()
	for _, name := range Files {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, &Error{File: name, Err: fmt.Errorf("read: %w", err)}
		}
		contents[name] = b
		fmt.Fprintf(sum, "%s %d\n", name, len(b))
		sum.Write(b)
	}
	s := &Snapshot{}
	var err error
	if s.facilities, s.facilityList, err = parseFacilities(contents[FacilitiesFile]); err != nil {
		return nil, err
	}
	if s.sensors, s.sensorList, err = parseSensors(contents[SensorsFile], s.facilities); err != nil {
		return nil, err
	}
	if s.models, err = parseTACs(contents[TACFile]); err != nil {
		return nil, err
	}
	if s.operators, s.nonStandardMNC, err = parseOperators(contents[OperatorsFile]); err != nil {
		return nil, err
	}
	s.version = hex.EncodeToString(sum.Sum(nil))[:16]
	s.loadDuration = time.Since(start)
	return s, nil
}

func parseFacilities(data []byte) (map[string]*Facility, []*Facility, error) {
	t, err := newTable(FacilitiesFile, bytes.NewReader(data), []string{
		"facility_id", "name", "type_code", "city", "department_code", "department_name", "disp", "lat", "lon",
	})
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]*Facility{}
	var list []*Facility
	lines := map[string]int{}
	err = t.each(func() (err error) {
		f := &Facility{}
		if f.ID, err = t.uniqueID("facility_id", facilityIDPattern, "a facility id (lowercase letters, digits and '-', at most 64)", lines); err != nil {
			return err
		}
		if f.Name, err = t.required("name"); err != nil {
			return err
		}
		if f.TypeCode, err = t.required("type_code"); err != nil {
			return err
		}
		if !typeCodePattern.MatchString(f.TypeCode) {
			return t.errAt("type_code", "%q is not a type code (upper-case letters, e.g. MA, CP, CD)", f.TypeCode)
		}
		f.TypeLabel = t.get("type_label")
		f.City = t.get("city")
		f.DepartmentCode = t.get("department_code")
		f.DepartmentName = t.get("department_name")
		if f.DISP, err = t.required("disp"); err != nil {
			return err
		}
		f.RegionCode = t.get("region_code")
		lat, hasLat, err := t.optFloat("lat", -90, 90)
		if err != nil {
			return err
		}
		lon, hasLon, err := t.optFloat("lon", -180, 180)
		if err != nil {
			return err
		}
		if hasLat != hasLon {
			return t.errAt("lon", "lat and lon must both be set or both be empty")
		}
		f.Lat, f.Lon, f.HasCoords = lat, lon, hasLat
		if f.Capacity, err = t.optInt("capacity", 0, 100000); err != nil {
			return err
		}
		f.SecurityLevel = t.get("security_level")
		byID[f.ID] = f
		list = append(list, f)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(list) == 0 {
		return nil, nil, &Error{File: FacilitiesFile, Err: errors.New("no facility: the file has only a header")}
	}
	slices.SortFunc(list, func(a, b *Facility) int { return strings.Compare(a.ID, b.ID) })
	return byID, list, nil
}

func parseSensors(data []byte, facilities map[string]*Facility) (map[string]*Sensor, []*Sensor, error) {
	t, err := newTable(SensorsFile, bytes.NewReader(data), sensorColumns)
	if err != nil {
		return nil, nil, err
	}
	byID := map[string]*Sensor{}
	var list []*Sensor
	lines := map[string]int{}
	err = t.each(func() (err error) {
		s := &Sensor{}
		if s.ID, err = t.uniqueID("sensor_id", sensorIDPattern, "a sensor id (lowercase letters, digits and . _ -, at most 64, as in the event contract)", lines); err != nil {
			return err
		}
		if s.FacilityID, err = t.required("facility_id"); err != nil {
			return err
		}
		if s.Facility = facilities[s.FacilityID]; s.Facility == nil {
			return t.errAt("facility_id", "unknown facility %q (not in %s)", s.FacilityID, FacilitiesFile)
		}
		if s.Building, err = t.required("building"); err != nil {
			return err
		}
		if s.Floor, err = t.optInt("floor", -5, 50); err != nil {
			return err
		}
		zt, err := t.required("zone_type")
		if err != nil {
			return err
		}
		s.ZoneType = ZoneType(zt)
		if !slices.Contains(ZoneTypes, s.ZoneType) {
			return t.errAt("zone_type", "%q is not a zone type (one of %s)", zt, joinStrings(ZoneTypes))
		}
		if s.Zone, err = t.required("zone"); err != nil {
			return err
		}
		var okX, okY bool
		if s.X, okX, err = t.optFloat("x_m", -100000, 100000); err != nil {
			return err
		}
		if s.Y, okY, err = t.optFloat("y_m", -100000, 100000); err != nil {
			return err
		}
		if !okX || !okY {
			return t.errAt("x_m", "x_m and y_m are required (metres from the facility's reference point)")
		}
		st, err := t.required("sensor_type")
		if err != nil {
			return err
		}
		s.Type = SensorType(st)
		if !slices.Contains(SensorTypes, s.Type) {
			return t.errAt("sensor_type", "%q is not a sensor type (one of %s)", st, joinStrings(SensorTypes))
		}
		if s.Vendor, err = t.required("vendor"); err != nil {
			return err
		}
		byID[s.ID] = s
		list = append(list, s)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(list, func(a, b *Sensor) int { return strings.Compare(a.ID, b.ID) })
	return byID, list, nil
}

func parseTACs(data []byte) (map[uint32]*Model, error) {
	t, err := newTable(TACFile, bytes.NewReader(data), []string{"tac", "manufacturer", "model"})
	if err != nil {
		return nil, err
	}
	models := make(map[uint32]*Model, bytes.Count(data, []byte{'\n'}))
	interned := map[string]string{}
	cTAC, cMan, cModel := t.col("tac"), t.col("manufacturer"), t.col("model")
	cMini, cConflict := t.col("mini_phone_candidate_derived"), t.col("tac_has_conflicting_rows")
	err = t.each(func() error {
		tac := t.at(cTAC)
		key, valid := tacKey(tac)
		if !valid {
			return t.errAt("tac", "%q is not a TAC (exactly 8 digits)", tac)
		}
		if prev, dup := models[key]; dup {
			conflicting, err := t.boolAt(cConflict, "tac_has_conflicting_rows")
			if err != nil {
				return err
			}
			if !conflicting {
				return t.errAt("tac", "TAC %s is already defined on line %d (mark both rows tac_has_conflicting_rows=yes to keep the first)", tac, prev.line)
			}
			return nil
		}
		var err error
		m := &Model{TAC: tac, line: t.line}
		if m.Manufacturer = t.at(cMan); m.Manufacturer == "" {
			return t.errAt("manufacturer", "value is empty: manufacturer is required")
		}
		if v, ok := interned[m.Manufacturer]; ok {
			m.Manufacturer = v
		} else {
			interned[m.Manufacturer] = m.Manufacturer
		}
		m.Model = t.at(cModel)
		if m.Mini, err = t.boolAt(cMini, "mini_phone_candidate_derived"); err != nil {
			return err
		}
		if _, err := t.boolAt(cConflict, "tac_has_conflicting_rows"); err != nil {
			return err
		}
		models[key] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return models, nil
}

func parseOperators(data []byte) (map[uint32]*Operator, int, error) {
	t, err := newTable(OperatorsFile, bytes.NewReader(data), []string{"mcc", "mnc", "country_iso", "country_name", "brand", "operator"})
	if err != nil {
		return nil, 0, err
	}
	ops := map[uint32]*Operator{}
	nonStandard := 0
	err = t.each(func() error {
		o := &Operator{MCC: t.get("mcc"), MNC: t.get("mnc")}
		if !isDigits(o.MCC, 3, 3) {
			return t.errAt("mcc", "%q is not an MCC (exactly 3 digits)", o.MCC)
		}
		if o.MNC == "" {
			return t.errAt("mnc", "value is empty: mnc is required")
		}
		key, valid := operatorKey(o.MCC, o.MNC)
		if !valid {
			// The source lists a few private-network ranges ("50144", "100 - 190", "?")
			// that no IMSI prefix can match: kept in the file, left out of the lookup.
			nonStandard++
			return nil
		}
		o.CountryISO = t.get("country_iso")
		o.Country = t.get("country_name")
		o.Brand = t.get("brand")
		o.Name = t.get("operator")
		o.Status = t.get("status")
		// Several rows can share one MCC/MNC (an operator per territory): the first
		// operational row wins, else the first row.
		if prev, dup := ops[key]; dup && (prev.Status == "Operational" || o.Status != "Operational") {
			return nil
		}
		ops[key] = o
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return ops, nonStandard, nil
}

// tacKey turns an 8-digit TAC into its map key.
func tacKey(tac string) (uint32, bool) {
	if !isDigits(tac, 8, 8) {
		return 0, false
	}
	v, err := strconv.ParseUint(tac, 10, 32)
	return uint32(v), err == nil
}

// operatorKey packs MCC, MNC and the MNC's length (so "01" and "001" differ) into a key.
func operatorKey(mcc, mnc string) (uint32, bool) {
	if !isDigits(mcc, 3, 3) || !isDigits(mnc, 2, 3) {
		return 0, false
	}
	var m, n uint32
	for i := 0; i < 3; i++ {
		m = m*10 + uint32(mcc[i]-'0')
	}
	for i := 0; i < len(mnc); i++ {
		n = n*10 + uint32(mnc[i]-'0')
	}
	return m<<12 | uint32(len(mnc))<<10 | n, true
}

func isDigits(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func joinStrings[T ~string](vs []T) string {
	ss := make([]string, len(vs))
	for i, v := range vs {
		ss[i] = string(v)
	}
	return strings.Join(ss, ", ")
}
