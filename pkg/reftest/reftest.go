// Package reftest builds reference data sets and raw event streams for the enricher's tests
// and benchmarks: the real facilities, TACs and operators, optionally grown to a target size
// with synthetic entries, sensors from pkg/reference's generator, and raw events whose kinds
// match their sensors.
package reftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing/fstest"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

// Options sizes a reference data set. Zero values keep the default data's size.
type Options struct {
	// Facilities grows the real 176 facilities with synthetic ones to this many.
	Facilities int
	// SensorsPerFacility gives each facility exactly this many sensors (0: realistic).
	SensorsPerFacility int
	// TACs grows the real TAC list with synthetic models to this many.
	TACs int
	// Seed of the sensor generator.
	Seed uint64
}

// Files returns the four reference files for opt, by file name.
func Files(opt Options) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range reference.Files {
		b, err := fs.ReadFile(schemaref.FS, name)
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", name, err)
		}
		files[name] = b
	}
	if opt.Facilities > 0 {
		grown, err := growFacilities(files[reference.FacilitiesFile], opt.Facilities)
		if err != nil {
			return nil, err
		}
		files[reference.FacilitiesFile] = grown
	}
	if opt.TACs > 0 {
		files[reference.TACFile] = growTACs(files[reference.TACFile], opt.TACs)
	}
	// Sensors are generated for the (possibly grown) facility list.
	files[reference.SensorsFile] = []byte("sensor_id,facility_id,building,floor,zone_type,zone,x_m,y_m,sensor_type,vendor\n")
	snap, err := reference.Load(mapFS(files))
	if err != nil {
		return nil, fmt.Errorf("load facilities: %w", err)
	}
	var buf bytes.Buffer
	sensors := reference.GenerateSensors(snap.Facilities(), reference.GenerateOptions{Seed: opt.Seed, PerFacility: opt.SensorsPerFacility})
	if err := reference.WriteSensorsCSV(&buf, sensors); err != nil {
		return nil, err
	}
	files[reference.SensorsFile] = buf.Bytes()
	return files, nil
}

// WriteDir writes the files of opt to dir.
func WriteDir(dir string, opt Options) error {
	files, err := Files(opt)
	if err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// FS returns the files of opt as a file system.
func FS(opt Options) (fs.FS, error) {
	files, err := Files(opt)
	if err != nil {
		return nil, err
	}
	return mapFS(files), nil
}

func mapFS(files map[string][]byte) fstest.MapFS {
	m := fstest.MapFS{}
	for name, b := range files {
		m[name] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	return m
}

func growFacilities(data []byte, n int) ([]byte, error) {
	r := csv.NewReader(bytes.NewReader(data))
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read facilities: %w", err)
	}
	header := rows[0]
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	real := rows[1:]
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(header)
	for i := 0; i < n; i++ {
		row := append([]string(nil), real[i%len(real)]...)
		if i >= len(real) {
			// A synthetic twin of a real facility, a few kilometres away.
			row[col["facility_id"]] = fmt.Sprintf("%s-x%d", row[col["facility_id"]], i/len(real))
			row[col["name"]] += fmt.Sprintf(" (synthetic %d)", i/len(real))
			lat, _ := strconv.ParseFloat(row[col["lat"]], 64)
			row[col["lat"]] = strconv.FormatFloat(lat+0.05*float64(i/len(real)), 'f', 5, 64)
		}
		_ = w.Write(row)
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

func growTACs(data []byte, n int) []byte {
	// Count distinct TACs: the real file lists one TAC twice.
	distinct := map[string]bool{}
	for _, line := range bytes.Split(data, []byte{'\n'})[1:] {
		if tac, _, ok := bytes.Cut(line, []byte{','}); ok && len(tac) == 8 {
			distinct[string(tac)] = true
		}
	}
	lines := len(distinct)
	out := bytes.NewBuffer(append([]byte(nil), data...))
	rng := rand.New(rand.NewPCG(42, 42))
	makers := []string{"Zanco", "L8star", "Long-CZ", "Anica", "GTStar", "Servo", "Uniwa"}
	for i := lines; i < n; i++ {
		// The Osmocom data has no TAC starting 21: synthetic TACs there collide with
		// no real row.
		fmt.Fprintf(out, "%08d,%s,BM%d-%d,,,,,,%s,\n", 21000000+i, makers[rng.IntN(len(makers))], rng.IntN(100), i,
			map[bool]string{true: "yes", false: ""}[rng.IntN(50) == 0])
	}
	return out.Bytes()
}

// Events generates n raw events from the sensors of snap, deterministically from seed:
// each sensor emits the kinds its type reports, phones come from a pool of devices with
// real and unknown TACs and French and foreign operators, timestamps advance by ~1 ms.
func Events(snap *reference.Snapshot, n int, seed uint64) []event.Raw {
	rng := rand.New(rand.NewPCG(seed, 7))
	sensors := snap.Sensors()
	models := snap.Models()
	start := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	type device struct{ imei, imsi, tac, mcc, mnc, route string }
	devices := make([]device, 2000)
	plmns := [][2]string{{"208", "01"}, {"208", "10"}, {"208", "15"}, {"208", "20"}, {"604", "00"}, {"310", "260"}, {"999", "99"}}
	for i := range devices {
		tac := models[rng.IntN(len(models))].TAC
		if rng.IntN(5) == 0 {
			tac = fmt.Sprintf("%08d", 1000+rng.IntN(1000)) // unknown: no real TAC starts 0000
		}
		p := plmns[rng.IntN(len(plmns))]
		devices[i] = device{pseudo("imei", i), pseudo("imsi", i), tac, p[0], p[1], pseudo("route", i)[:2]}
	}
	out := make([]event.Raw, n)
	f := func(v float64) *float64 { return &v }
	for i := range out {
		s := sensors[rng.IntN(len(sensors))]
		r := &out[i]
		r.EventID = fmt.Sprintf("ev-%d-%08d", seed, i)
		r.SensorID = s.ID
		at := start.Add(time.Duration(i) * time.Millisecond)
		r.ObservedAt = event.NewTime(at)
		r.ReceivedAt = event.NewTime(at.Add(800 * time.Millisecond))
		switch s.Type {
		case reference.SensorMAS:
			kinds := []event.Kind{event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt}
			r.Kind = kinds[rng.IntN(len(kinds))]
			d := devices[rng.IntN(len(devices))]
			r.RAT, r.Band, r.FreqMHz, r.RSSIdBm = event.RAT2G, "GSM900", f(935.2), f(float64(-50-rng.IntN(50)))
			if r.Kind != event.KindMASAttach {
				r.Outcome = event.OutcomeBlocked
			}
			r.KeyVersion, r.IMEIPseudo, r.TAC, r.SerialBlock, r.DeviceRoute = "k1", d.imei, d.tac, "5e1a1b10c0000104", d.route
			if rng.IntN(10) > 0 {
				r.IMSIPseudo, r.MCC, r.MNC = d.imsi, d.mcc, d.mnc
			}
		case reference.SensorRF:
			r.Kind = event.KindRFBurst
			r.Band, r.FreqMHz, r.RSSIdBm, r.BandwidthKHz = "LTE800", f(806), f(float64(-40-rng.IntN(50))), f(200)
		case reference.SensorDrone:
			r.Kind = event.KindDroneSeen
			r.Drone = &event.Drone{DetectionSource: "remote_id", Lat: 43.5 + rng.Float64()/100, Lon: 5.4 + rng.Float64()/100, AltM: f(80)}
		case reference.SensorJammer:
			r.Kind = event.KindJammerAlarm
			r.Jammer = &event.Jammer{Alarm: "fault", Severity: "warning"}
		default:
			r.Kind = event.KindItemSeized
			r.Zone, r.Cell = "B-2", "B-214"
			r.Seizure = &event.Seizure{Phones: 1, MiniPhones: int64(rng.IntN(2)), SIMs: 1}
			if rng.IntN(2) == 0 {
				d := devices[rng.IntN(len(devices))]
				r.KeyVersion, r.IMEIPseudo, r.TAC, r.DeviceRoute = "k1", d.imei, d.tac, d.route
			}
		}
	}
	return out
}

// Marshal encodes events as raw messages.
func Marshal(events []event.Raw) ([][]byte, error) {
	out := make([][]byte, len(events))
	for i := range events {
		b, err := json.Marshal(&events[i])
		if err != nil {
			return nil, fmt.Errorf("marshal event %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}

func pseudo(domain string, i int) string {
	sum := sha256.Sum256([]byte(domain + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:16])
}
