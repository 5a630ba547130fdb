// Package rows turns enriched events into ClickHouse column vectors for the detections
// table: one Go slice per column, appended to a clickhouse-go batch column by column (no
// reflection per value), and sliceable so that a rejected batch can be split.
package rows

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/vigie/vigie/pkg/event"
)

// Columns is the explicit column list of the insert, in the order of Block's vectors.
const Columns = "event_id, sensor_id, kind, observed_at, received_at, enriched_at, " +
	"zone, cell, facility_id, facility_name, facility_type, disp, region_code, department_code, department_name, " +
	"facility_lat, facility_lon, building, zone_type, sensor_type, vendor, " +
	"rat, band, freq_mhz, rssi_dbm, outcome, duration_ms, data_bytes, bandwidth_khz, " +
	"key_version, imei_pseudo, imsi_pseudo, msisdn_pseudo, tac, serial_block, imei_check_ok, mcc, mnc, " +
	"manufacturer, model, mini_phone, operator, brand, country, " +
	"drone_source, drone_lat, drone_lon, drone_alt_m, drone_height_m, drone_speed_mps, drone_vertical_speed_mps, drone_heading_deg, " +
	"drone_uas_id, drone_uas_id_type, drone_ua_type, drone_operational_status, drone_operator_id, " +
	"drone_operator_lat, drone_operator_lon, drone_operator_alt_m, drone_operator_location_type, " +
	"jammer_id, jammer_alarm, jammer_severity, jammer_bands, " +
	"seized_phones, seized_mini_phones, seized_sims, seized_accessories, search_id, found_by, " +
	"kafka_topic, kafka_partition, kafka_offset"

// Block holds rows of the detections table as column vectors.
type Block struct {
	EventID, SensorID, Kind              []string
	ObservedAt, ReceivedAt, EnrichedAt   []time.Time
	Zone, Cell, FacilityID, FacilityName []string
	FacilityType, DISP, RegionCode       []string
	DepartmentCode, DepartmentName       []string
	FacilityLat, FacilityLon             []*float64
	Building, ZoneType, SensorType       []string
	Vendor                               []string

	RAT, Band              []string
	FreqMHz, RSSIdBm       []*float64
	Outcome                []string
	DurationMs             []*uint32
	DataBytes              []*uint64
	BandwidthKHz           []*float64
	KeyVersion             []string
	IMEIPseudo, IMSIPseudo []string
	MSISDNPseudo, TAC      []string
	SerialBlock            []string
	IMEICheckOK            []*bool
	MCC, MNC               []string
	Manufacturer, Model    []string
	MiniPhone              []*bool
	Operator, Brand        []string
	Country                []string

	DroneSource                                           []string
	DroneLat, DroneLon, DroneAltM, DroneHeightM           []*float64
	DroneSpeedMps, DroneVerticalSpeedMps, DroneHeadingDeg []*float64
	DroneUASID, DroneUASIDType, DroneUAType               []string
	DroneOperationalStatus, DroneOperatorID               []string
	DroneOperatorLat, DroneOperatorLon, DroneOperatorAltM []*float64
	DroneOperatorLocationType                             []string

	JammerID, JammerAlarm, JammerSeverity []string
	JammerBands                           [][]string

	SeizedPhones, SeizedMiniPhones, SeizedSIMs []uint32
	SeizedAccessories                          []*uint32
	SearchID, FoundBy                          []string

	KafkaTopic     []string
	KafkaPartition []uint16
	KafkaOffset    []int64
}

// Len is the number of rows.
func (b *Block) Len() int { return len(b.EventID) }

// Reset empties b, keeping its capacity.
func (b *Block) Reset() { *b = *b.Slice(0, 0) }

// Slice returns the rows [i, j) sharing b's memory.
func (b *Block) Slice(i, j int) *Block {
	return &Block{
		EventID: b.EventID[i:j], SensorID: b.SensorID[i:j], Kind: b.Kind[i:j],
		ObservedAt: b.ObservedAt[i:j], ReceivedAt: b.ReceivedAt[i:j], EnrichedAt: b.EnrichedAt[i:j],
		Zone: b.Zone[i:j], Cell: b.Cell[i:j], FacilityID: b.FacilityID[i:j], FacilityName: b.FacilityName[i:j],
		FacilityType: b.FacilityType[i:j], DISP: b.DISP[i:j], RegionCode: b.RegionCode[i:j],
		DepartmentCode: b.DepartmentCode[i:j], DepartmentName: b.DepartmentName[i:j],
		FacilityLat: b.FacilityLat[i:j], FacilityLon: b.FacilityLon[i:j],
		Building: b.Building[i:j], ZoneType: b.ZoneType[i:j], SensorType: b.SensorType[i:j], Vendor: b.Vendor[i:j],
		RAT: b.RAT[i:j], Band: b.Band[i:j], FreqMHz: b.FreqMHz[i:j], RSSIdBm: b.RSSIdBm[i:j],
		Outcome: b.Outcome[i:j], DurationMs: b.DurationMs[i:j], DataBytes: b.DataBytes[i:j], BandwidthKHz: b.BandwidthKHz[i:j],
		KeyVersion: b.KeyVersion[i:j], IMEIPseudo: b.IMEIPseudo[i:j], IMSIPseudo: b.IMSIPseudo[i:j],
		MSISDNPseudo: b.MSISDNPseudo[i:j], TAC: b.TAC[i:j], SerialBlock: b.SerialBlock[i:j],
		IMEICheckOK: b.IMEICheckOK[i:j], MCC: b.MCC[i:j], MNC: b.MNC[i:j],
		Manufacturer: b.Manufacturer[i:j], Model: b.Model[i:j], MiniPhone: b.MiniPhone[i:j],
		Operator: b.Operator[i:j], Brand: b.Brand[i:j], Country: b.Country[i:j],
		DroneSource: b.DroneSource[i:j], DroneLat: b.DroneLat[i:j], DroneLon: b.DroneLon[i:j],
		DroneAltM: b.DroneAltM[i:j], DroneHeightM: b.DroneHeightM[i:j], DroneSpeedMps: b.DroneSpeedMps[i:j],
		DroneVerticalSpeedMps: b.DroneVerticalSpeedMps[i:j], DroneHeadingDeg: b.DroneHeadingDeg[i:j],
		DroneUASID: b.DroneUASID[i:j], DroneUASIDType: b.DroneUASIDType[i:j], DroneUAType: b.DroneUAType[i:j],
		DroneOperationalStatus: b.DroneOperationalStatus[i:j], DroneOperatorID: b.DroneOperatorID[i:j],
		DroneOperatorLat: b.DroneOperatorLat[i:j], DroneOperatorLon: b.DroneOperatorLon[i:j],
		DroneOperatorAltM: b.DroneOperatorAltM[i:j], DroneOperatorLocationType: b.DroneOperatorLocationType[i:j],
		JammerID: b.JammerID[i:j], JammerAlarm: b.JammerAlarm[i:j], JammerSeverity: b.JammerSeverity[i:j],
		JammerBands:  b.JammerBands[i:j],
		SeizedPhones: b.SeizedPhones[i:j], SeizedMiniPhones: b.SeizedMiniPhones[i:j], SeizedSIMs: b.SeizedSIMs[i:j],
		SeizedAccessories: b.SeizedAccessories[i:j], SearchID: b.SearchID[i:j], FoundBy: b.FoundBy[i:j],
		KafkaTopic: b.KafkaTopic[i:j], KafkaPartition: b.KafkaPartition[i:j], KafkaOffset: b.KafkaOffset[i:j],
	}
}

// vectors lists b's columns in the order of Columns.
func (b *Block) vectors() []any {
	return []any{
		b.EventID, b.SensorID, b.Kind, b.ObservedAt, b.ReceivedAt, b.EnrichedAt,
		b.Zone, b.Cell, b.FacilityID, b.FacilityName, b.FacilityType, b.DISP, b.RegionCode, b.DepartmentCode, b.DepartmentName,
		b.FacilityLat, b.FacilityLon, b.Building, b.ZoneType, b.SensorType, b.Vendor,
		b.RAT, b.Band, b.FreqMHz, b.RSSIdBm, b.Outcome, b.DurationMs, b.DataBytes, b.BandwidthKHz,
		b.KeyVersion, b.IMEIPseudo, b.IMSIPseudo, b.MSISDNPseudo, b.TAC, b.SerialBlock, b.IMEICheckOK, b.MCC, b.MNC,
		b.Manufacturer, b.Model, b.MiniPhone, b.Operator, b.Brand, b.Country,
		b.DroneSource, b.DroneLat, b.DroneLon, b.DroneAltM, b.DroneHeightM, b.DroneSpeedMps, b.DroneVerticalSpeedMps, b.DroneHeadingDeg,
		b.DroneUASID, b.DroneUASIDType, b.DroneUAType, b.DroneOperationalStatus, b.DroneOperatorID,
		b.DroneOperatorLat, b.DroneOperatorLon, b.DroneOperatorAltM, b.DroneOperatorLocationType,
		b.JammerID, b.JammerAlarm, b.JammerSeverity, b.JammerBands,
		b.SeizedPhones, b.SeizedMiniPhones, b.SeizedSIMs, b.SeizedAccessories, b.SearchID, b.FoundBy,
		b.KafkaTopic, b.KafkaPartition, b.KafkaOffset,
	}
}

// AppendTo appends every column of b to batch, which must have been prepared with Columns.
func (b *Block) AppendTo(batch driver.Batch) error {
	for i, v := range b.vectors() {
		if err := batch.Column(i).Append(v); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// Add appends one event read from topic/partition at offset. It fails, leaving b unchanged,
// when a value cannot be stored in its column.
func (b *Block) Add(e *event.Enriched, topic string, partition int, offset int64) error {
	if err := check(e, partition); err != nil {
		return err
	}
	b.EventID = append(b.EventID, e.EventID)
	b.SensorID = append(b.SensorID, e.SensorID)
	b.Kind = append(b.Kind, string(e.Kind))
	b.ObservedAt = append(b.ObservedAt, e.ObservedAt.Time)
	b.ReceivedAt = append(b.ReceivedAt, e.ReceivedAt.Time)
	b.EnrichedAt = append(b.EnrichedAt, e.EnrichedAt.Time)
	b.Zone = append(b.Zone, e.Zone)
	b.Cell = append(b.Cell, e.Cell)
	b.FacilityID = append(b.FacilityID, e.FacilityID)
	b.FacilityName = append(b.FacilityName, e.FacilityName)
	b.FacilityType = append(b.FacilityType, e.FacilityType)
	b.DISP = append(b.DISP, e.DISP)
	b.RegionCode = append(b.RegionCode, e.RegionCode)
	b.DepartmentCode = append(b.DepartmentCode, e.DepartmentCode)
	b.DepartmentName = append(b.DepartmentName, e.DepartmentName)
	b.FacilityLat = append(b.FacilityLat, e.FacilityLat)
	b.FacilityLon = append(b.FacilityLon, e.FacilityLon)
	b.Building = append(b.Building, e.Building)
	b.ZoneType = append(b.ZoneType, e.ZoneType)
	b.SensorType = append(b.SensorType, e.SensorType)
	b.Vendor = append(b.Vendor, e.Vendor)

	b.RAT = append(b.RAT, string(e.RAT))
	b.Band = append(b.Band, e.Band)
	b.FreqMHz = append(b.FreqMHz, e.FreqMHz)
	b.RSSIdBm = append(b.RSSIdBm, e.RSSIdBm)
	b.Outcome = append(b.Outcome, string(e.Outcome))
	b.DurationMs = append(b.DurationMs, u32(e.DurationMs))
	b.DataBytes = append(b.DataBytes, u64(e.DataBytes))
	b.BandwidthKHz = append(b.BandwidthKHz, e.BandwidthKHz)
	b.KeyVersion = append(b.KeyVersion, e.KeyVersion)
	b.IMEIPseudo = append(b.IMEIPseudo, e.IMEIPseudo)
	b.IMSIPseudo = append(b.IMSIPseudo, e.IMSIPseudo)
	b.MSISDNPseudo = append(b.MSISDNPseudo, e.MSISDNPseudo)
	b.TAC = append(b.TAC, e.TAC)
	b.SerialBlock = append(b.SerialBlock, e.SerialBlock)
	b.IMEICheckOK = append(b.IMEICheckOK, e.IMEICheckOK)
	b.MCC = append(b.MCC, e.MCC)
	b.MNC = append(b.MNC, e.MNC)
	b.Manufacturer = append(b.Manufacturer, e.Manufacturer)
	b.Model = append(b.Model, e.Model)
	b.MiniPhone = append(b.MiniPhone, e.MiniPhone)
	b.Operator = append(b.Operator, e.Operator)
	b.Brand = append(b.Brand, e.Brand)
	b.Country = append(b.Country, e.Country)

	var d event.Drone
	var rid event.RemoteID
	if e.Drone != nil {
		d = *e.Drone
		if d.RemoteID != nil {
			rid = *d.RemoteID
		}
	}
	b.DroneSource = append(b.DroneSource, d.DetectionSource)
	if e.Drone != nil {
		b.DroneLat = append(b.DroneLat, &e.Drone.Lat)
		b.DroneLon = append(b.DroneLon, &e.Drone.Lon)
	} else {
		b.DroneLat = append(b.DroneLat, nil)
		b.DroneLon = append(b.DroneLon, nil)
	}
	b.DroneAltM = append(b.DroneAltM, d.AltM)
	b.DroneHeightM = append(b.DroneHeightM, d.HeightM)
	b.DroneSpeedMps = append(b.DroneSpeedMps, d.SpeedMps)
	b.DroneVerticalSpeedMps = append(b.DroneVerticalSpeedMps, d.VerticalSpeedMps)
	b.DroneHeadingDeg = append(b.DroneHeadingDeg, d.HeadingDeg)
	b.DroneUASID = append(b.DroneUASID, rid.UASID)
	b.DroneUASIDType = append(b.DroneUASIDType, rid.UASIDType)
	b.DroneUAType = append(b.DroneUAType, rid.UAType)
	b.DroneOperationalStatus = append(b.DroneOperationalStatus, rid.OperationalStatus)
	b.DroneOperatorID = append(b.DroneOperatorID, rid.OperatorID)
	b.DroneOperatorLat = append(b.DroneOperatorLat, rid.OperatorLat)
	b.DroneOperatorLon = append(b.DroneOperatorLon, rid.OperatorLon)
	b.DroneOperatorAltM = append(b.DroneOperatorAltM, rid.OperatorAltM)
	b.DroneOperatorLocationType = append(b.DroneOperatorLocationType, rid.OperatorLocationType)

	var j event.Jammer
	if e.Jammer != nil {
		j = *e.Jammer
	}
	if j.Bands == nil {
		j.Bands = []string{}
	}
	b.JammerID = append(b.JammerID, j.JammerID)
	b.JammerAlarm = append(b.JammerAlarm, j.Alarm)
	b.JammerSeverity = append(b.JammerSeverity, j.Severity)
	b.JammerBands = append(b.JammerBands, j.Bands)

	var s event.Seizure
	if e.Seizure != nil {
		s = *e.Seizure
	}
	b.SeizedPhones = append(b.SeizedPhones, uint32(s.Phones))
	b.SeizedMiniPhones = append(b.SeizedMiniPhones, uint32(s.MiniPhones))
	b.SeizedSIMs = append(b.SeizedSIMs, uint32(s.SIMs))
	b.SeizedAccessories = append(b.SeizedAccessories, u32(s.Accessories))
	b.SearchID = append(b.SearchID, s.SearchID)
	b.FoundBy = append(b.FoundBy, s.FoundBy)

	b.KafkaTopic = append(b.KafkaTopic, topic)
	b.KafkaPartition = append(b.KafkaPartition, uint16(partition))
	b.KafkaOffset = append(b.KafkaOffset, offset)
	return nil
}

// check rejects what the columns cannot hold, so that a bad event goes to the dead-letter
// topic instead of failing a whole insert.
func check(e *event.Enriched, partition int) error {
	switch {
	case e.EventID == "":
		return errors.New("event_id is empty")
	case e.SensorID == "":
		return errors.New("sensor_id is empty")
	case e.Kind == "":
		return errors.New("kind is empty")
	case e.ObservedAt.IsZero():
		return errors.New("observed_at is missing")
	case partition < 0 || partition > math.MaxUint16:
		return fmt.Errorf("partition %d does not fit kafka_partition UInt16", partition)
	case hasControl(e.SensorID):
		return errors.New("sensor_id holds a control character")
	case hasControl(e.EventID):
		return errors.New("event_id holds a control character")
	}
	if err := checkTime("observed_at", e.ObservedAt.Time); err != nil {
		return err
	}
	if err := checkTime("received_at", e.ReceivedAt.Time); err != nil {
		return err
	}
	if err := checkTime("enriched_at", e.EnrichedAt.Time); err != nil {
		return err
	}
	if err := checkUint("duration_ms", e.DurationMs, math.MaxUint32); err != nil {
		return err
	}
	if err := checkUint("data_bytes", e.DataBytes, math.MaxInt64); err != nil {
		return err
	}
	if s := e.Seizure; s != nil {
		for _, c := range []struct {
			name string
			v    *int64
		}{{"seizure.phones", &s.Phones}, {"seizure.mini_phones", &s.MiniPhones}, {"seizure.sims", &s.SIMs}, {"seizure.accessories", s.Accessories}} {
			if err := checkUint(c.name, c.v, math.MaxUint32); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTime accepts the zero time (stored as the epoch) and DateTime64(3)'s range.
// hasControl reports whether s holds a byte below 0x20: the contract's identifiers never do
// (their patterns allow letters, digits and . _ : -), and the writer's identity check
// separates identities with such bytes.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

func checkTime(name string, t time.Time) error {
	if !t.IsZero() && (t.Year() < 1900 || t.Year() > 2261) {
		return fmt.Errorf("%s %s is outside DateTime64's range", name, t.Format(time.RFC3339))
	}
	return nil
}

func checkUint(name string, v *int64, limit int64) error {
	if v != nil && (*v < 0 || *v > limit) {
		return fmt.Errorf("%s %d is outside [0, %d]", name, *v, limit)
	}
	return nil
}

func u32(v *int64) *uint32 {
	if v == nil {
		return nil
	}
	u := uint32(*v)
	return &u
}

func u64(v *int64) *uint64 {
	if v == nil {
		return nil
	}
	u := uint64(*v)
	return &u
}
