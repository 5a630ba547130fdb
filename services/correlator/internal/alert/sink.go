package alert

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
)

// Sink receives alerts. Write returns once the alerts are durable in the sink.
type Sink interface {
	Write(ctx context.Context, alerts []Alert) error
}

// Columns is the explicit column list of the alerts insert, in Append order.
const Columns = event.AlertColumns

// ClickHouseSink inserts alerts into {database}.alerts.
type ClickHouseSink struct {
	conn   driver.Conn
	insert string
}

var _ Sink = (*ClickHouseSink)(nil)

// NewClickHouseSink writes to database's alerts table through conn.
func NewClickHouseSink(conn driver.Conn, database string) (*ClickHouseSink, error) {
	q, err := chmigrate.Bind("INSERT INTO {db}.alerts ("+Columns+")", database)
	if err != nil {
		return nil, err
	}
	return &ClickHouseSink{conn: conn, insert: q}, nil
}

// Write inserts the alerts in one block.
func (s *ClickHouseSink) Write(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, s.insert)
	if err != nil {
		return fmt.Errorf("prepare alerts insert: %w", err)
	}
	for i := range alerts {
		a := &alerts[i]
		if err := batch.Append(a.ID, a.Rule, a.Severity, a.GroupKey, nonNil(a.Facilities), a.FirstEvidenceAt, a.LastEvidenceAt,
			a.WindowStart, a.WindowEnd, nonNil(a.EvidenceIDs), a.EvidenceCount, a.Explanation, a.CreatedAt, a.UpdatedAt, a.Version); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append alert %s: %w", a.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d alerts: %w", len(alerts), err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// KafkaSink produces alerts as JSON to alerts.v1, keyed by alert id (so that the versions
// of one finding stay in order on one partition), synchronously.
type KafkaSink struct {
	p *kafka.Producer
}

var _ Sink = (*KafkaSink)(nil)

// NewKafkaSink writes through p (acks from producer.acks, all by default). The caller
// closes p.
func NewKafkaSink(p *kafka.Producer) *KafkaSink { return &KafkaSink{p: p} }

// Write produces the alerts and waits for the broker's acknowledgement.
func (s *KafkaSink) Write(ctx context.Context, alerts []Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(alerts))
	for i := range alerts {
		v, err := event.EncodeAlert(&alerts[i])
		if err != nil {
			return err
		}
		msgs[i] = kafka.Message{Key: []byte(alerts[i].ID), Value: v, Time: alerts[i].UpdatedAt}
	}
	if err := s.p.Write(ctx, msgs...); err != nil {
		return fmt.Errorf("produce %d alerts: %w", len(alerts), err)
	}
	return nil
}

// Sinks writes to each sink in order: ClickHouse first (the analysts' record), then Kafka.
type Sinks []Sink

// Write stops at the first sink that fails.
func (ss Sinks) Write(ctx context.Context, alerts []Alert) error {
	for _, s := range ss {
		if err := s.Write(ctx, alerts); err != nil {
			return err
		}
	}
	return nil
}

// Memory collects alerts in memory (tests, benchmarks).
type Memory struct {
	Alerts []Alert
	Err    error
}

// Write appends the alerts.
func (m *Memory) Write(_ context.Context, alerts []Alert) error {
	if m.Err != nil {
		return m.Err
	}
	m.Alerts = append(m.Alerts, alerts...)
	return nil
}
