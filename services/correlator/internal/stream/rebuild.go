package stream

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Rebuilder restores a partition's streaming state when the partition is assigned (or its
// rules change).
type Rebuilder interface {
	// Rebuild feeds eng, without emitting, the events of topic/partition below offset
	// before that eng's rules still need, in offset order, and returns the offset following
	// the last event it had (0 when it had none): the consumer reads Kafka from there.
	Rebuild(ctx context.Context, eng *Engine, topic string, partition int, before int64) (next int64, events int, err error)
}

// ClickHouseRebuilder rebuilds state from the detections table, which the writer service
// fills from the same topic, recording each row's Kafka partition and offset. Because the
// engine's state is a function of the partition's events in offset order, replaying them
// from ClickHouse gives the state the previous owner had, open findings included.
type ClickHouseRebuilder struct {
	conn driver.Conn
	db   string
}

var _ Rebuilder = (*ClickHouseRebuilder)(nil)

// NewClickHouseRebuilder reads database's detections.
func NewClickHouseRebuilder(conn driver.Conn, database string) *ClickHouseRebuilder {
	return &ClickHouseRebuilder{conn: conn, db: database}
}

const rebuildColumns = "event_id, sensor_id, kind, observed_at, zone, cell, facility_id, facility_lat, facility_lon, " +
	"facility_type, disp, region_code, department_code, building, zone_type, sensor_type, vendor, rat, band, outcome, " +
	"imei_pseudo, imsi_pseudo, msisdn_pseudo, tac, serial_block, mcc, mnc, manufacturer, model, operator, country, " +
	"search_id, seized_phones, seized_mini_phones, seized_sims, received_at, kafka_offset"

// scanDetection reads a row of rebuildColumns (then extra, the columns after them) into e,
// as the enricher wrote the event (its device key derived again), and returns its offset.
func scanDetection(rows driver.Rows, e *event.Enriched, extra ...any) (int64, error) {
	var kind, rat, outcome string
	var observed, received time.Time
	var searchID string
	var phones, minis, sims uint32
	var offset int64
	dest := []any{&e.EventID, &e.SensorID, &kind, &observed, &e.Zone, &e.Cell, &e.FacilityID, &e.FacilityLat, &e.FacilityLon,
		&e.FacilityType, &e.DISP, &e.RegionCode, &e.DepartmentCode, &e.Building, &e.ZoneType, &e.SensorType, &e.Vendor, &rat, &e.Band, &outcome,
		&e.IMEIPseudo, &e.IMSIPseudo, &e.MSISDNPseudo, &e.TAC, &e.SerialBlock, &e.MCC, &e.MNC, &e.Manufacturer, &e.Model, &e.Operator, &e.Country,
		&searchID, &phones, &minis, &sims, &received, &offset}
	if err := rows.Scan(append(dest, extra...)...); err != nil {
		return 0, err
	}
	e.Kind, e.RAT, e.Outcome = event.Kind(kind), event.RAT(rat), event.Outcome(outcome)
	e.ObservedAt, e.ReceivedAt = event.NewTime(observed), event.NewTime(received)
	if e.Kind == event.KindItemSeized {
		e.Seizure = &event.Seizure{Phones: int64(phones), MiniPhones: int64(minis), SIMs: int64(sims), SearchID: searchID}
	}
	e.Enrichment.DeviceKey = e.Raw.DeviceKey()
	return offset, nil
}

// Rebuild implements Rebuilder.
func (b *ClickHouseRebuilder) Rebuild(ctx context.Context, eng *Engine, topic string, partition int, before int64) (int64, int, error) {
	rs := eng.Rules()
	if len(rs) == 0 {
		return before, 0, nil
	}
	var maxOffset int64
	var rows uint64
	var latest time.Time
	// The latest event time among the events the engine would read (in bounds: a time
	// from the future stored by an older pipeline must not hide the partition's history).
	ck := eng.Config().Clock
	inBounds := fmt.Sprintf("observed_at <= least(received_at, %[1]s) + toIntervalMillisecond(%[2]d) AND observed_at >= least(received_at, %[1]s) - toIntervalMillisecond(%[3]d)",
		dt64(time.Now()), ck.MaxSkew.Milliseconds(), ck.Retention.Milliseconds())
	q := fmt.Sprintf("SELECT max(kafka_offset), count(), maxIf(observed_at, %s) FROM `%s`.detections WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset < ?", inBounds, b.db)
	if err := b.conn.QueryRow(ctx, q, topic, uint16(partition), before).Scan(&maxOffset, &rows, &latest); err != nil {
		return 0, 0, fmt.Errorf("rebuild %s/%d: read extent: %w", topic, partition, err)
	}
	if rows == 0 {
		return 0, 0, nil
	}
	src := rules.Sources["detections"]
	var conds []string
	for _, r := range rs {
		from := latest.Add(-r.Horizon() - ck.Lateness)
		c := fmt.Sprintf("observed_at >= %s AND %s", dt64(from), r.Where.SQL(src))
		if r.Type == rules.Sequence {
			first, then := r.First.Where.SQL(src), r.Then.Where.SQL(src)
			if first == then {
				c += " AND (" + first + ")"
			} else {
				// Then-step events matter only for devices with a first-step event in the
				// window (SEIZED_RESURRECTION: the few seized phones, not 90 days of traffic).
				c += fmt.Sprintf(" AND ((%[1]s) OR (%[2]s) AND device_key IN (SELECT device_key FROM `%[3]s`.detections "+
					"WHERE kafka_topic = %[4]s AND kafka_partition = %[5]d AND kafka_offset < %[6]d AND observed_at >= %[7]s AND %[1]s))",
					first, then, b.db, rules.Quote(topic), partition, before, dt64(from))
			}
		}
		conds = append(conds, "("+c+")")
	}
	q = fmt.Sprintf("SELECT %s FROM `%s`.detections WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset < ? AND (%s) ORDER BY kafka_offset",
		rebuildColumns, b.db, strings.Join(conds, " OR "))
	res, err := b.conn.Query(ctx, q, topic, uint16(partition), before)
	if err != nil {
		return 0, 0, fmt.Errorf("rebuild %s/%d: %w", topic, partition, err)
	}
	defer res.Close()
	n := 0
	for res.Next() {
		var e event.Enriched
		if _, err := scanDetection(res, &e); err != nil {
			return 0, n, fmt.Errorf("rebuild %s/%d: scan: %w", topic, partition, err)
		}
		eng.Observe(&e, false, nil)
		n++
	}
	if err := res.Err(); err != nil {
		return 0, n, fmt.Errorf("rebuild %s/%d: %w", topic, partition, err)
	}
	return maxOffset + 1, n, nil
}

func dt64(t time.Time) string {
	return "toDateTime64('" + t.UTC().Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')"
}
