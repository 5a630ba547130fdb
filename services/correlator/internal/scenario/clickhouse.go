package scenario

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/event"
)

// detectionColumns are the detections columns the correlator reads; the others keep their
// defaults.
const detectionColumns = "event_id, sensor_id, kind, observed_at, received_at, enriched_at, zone, facility_id, facility_name, " +
	"facility_lat, facility_lon, zone_type, sensor_type, rat, outcome, key_version, imei_pseudo, imsi_pseudo, tac, serial_block, " +
	"mcc, mnc, seized_phones, seized_mini_phones, seized_sims, search_id, kafka_topic, kafka_partition, kafka_offset"

// Position is where an event sits in Kafka, as the writer records it.
type Position struct {
	Topic     string
	Partition int
	Offset    int64
}

// InsertDetections writes events to database's detections table as the writer service
// would (the rollups follow through their materialized views). pos gives each event's Kafka
// position; nil writes topic "scenario", partition 0, offsets in order.
func InsertDetections(ctx context.Context, conn driver.Conn, database string, es []event.Enriched, pos []Position) error {
	for start := 0; start < len(es); start += 50_000 {
		end := min(start+50_000, len(es))
		b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO `%s`.detections (%s)", database, detectionColumns))
		if err != nil {
			return fmt.Errorf("prepare detections insert: %w", err)
		}
		for i := start; i < end; i++ {
			e := &es[i]
			p := Position{Topic: "scenario", Offset: int64(i)}
			if pos != nil {
				p = pos[i]
			}
			var phones, minis, sims uint32
			var search string
			if e.Seizure != nil {
				phones, minis, sims, search = uint32(e.Seizure.Phones), uint32(e.Seizure.MiniPhones), uint32(e.Seizure.SIMs), e.Seizure.SearchID
			}
			if err := b.Append(e.EventID, e.SensorID, string(e.Kind), e.ObservedAt.Time, e.ReceivedAt.Time, e.EnrichedAt.Time, e.Zone,
				e.FacilityID, e.FacilityName, e.FacilityLat, e.FacilityLon, e.ZoneType, e.SensorType, string(e.RAT), string(e.Outcome),
				e.KeyVersion, e.IMEIPseudo, e.IMSIPseudo, e.TAC, e.SerialBlock, e.MCC, e.MNC, phones, minis, sims, search,
				p.Topic, uint16(p.Partition), p.Offset); err != nil {
				_ = b.Abort()
				return fmt.Errorf("append detection %s: %w", e.EventID, err)
			}
		}
		if err := b.Send(); err != nil {
			return fmt.Errorf("insert detections: %w", err)
		}
	}
	return nil
}
