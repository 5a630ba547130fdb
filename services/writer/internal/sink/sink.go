// Package sink writes detections blocks to ClickHouse over the native protocol and reads
// back the highest Kafka offset ClickHouse holds per partition. The connection comes from
// pkg/clickhouse.Open.
package sink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/services/writer/internal/rows"
)

// Sink inserts blocks into {database}.detections.
type Sink struct {
	conn      driver.Conn
	insert    string
	offsets   string
	partition string
	timeout   time.Duration
}

// New returns a sink on conn for database.
func New(conn driver.Conn, database string, queryTimeout time.Duration) (*Sink, error) {
	insert, err := chmigrate.Bind("INSERT INTO {db}.detections ("+rows.Columns+")", database)
	if err != nil {
		return nil, err
	}
	// Read from detections' kafka_offsets projection (stored in each part, atomic with its
	// rows), not from the writer_offsets view (a separate insert that can lag the rows).
	offsets, err := chmigrate.Bind("SELECT kafka_partition, max(kafka_offset) FROM {db}.detections WHERE kafka_topic = ? GROUP BY kafka_partition", database)
	if err != nil {
		return nil, err
	}
	partition, err := chmigrate.Bind("SELECT max(kafka_offset) FROM {db}.detections WHERE kafka_topic = ? AND kafka_partition = ? GROUP BY kafka_partition", database)
	if err != nil {
		return nil, err
	}
	return &Sink{conn: conn, insert: insert, offsets: offsets, partition: partition, timeout: queryTimeout}, nil
}

// Insert writes blocks as one insert (one data block on the wire) whose deduplication
// token is token: ClickHouse drops a block it has already stored under the same token, in
// detections and, through deduplicate_blocks_in_dependent_materialized_views, in every
// rollup fed from it.
func (s *Sink) Insert(ctx context.Context, blocks []*rows.Block, token string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplicate":                                 1,
		"insert_deduplication_token":                         token,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
	}))
	batch, err := s.conn.PrepareBatch(ctx, s.insert)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	n := 0
	for _, b := range blocks {
		if err := b.AppendTo(batch); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("append %d rows: %w", b.Len(), errors.Join(ErrRejected, err))
		}
		n += b.Len()
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send %d rows: %w", n, err)
	}
	return nil
}

// Offsets returns the highest Kafka offset stored per partition of topic.
func (s *Sink) Offsets(ctx context.Context, topic string) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.conn.Query(ctx, s.offsets, topic)
	if err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	defer r.Close()
	out := map[int]int64{}
	for r.Next() {
		var p uint16
		var o int64
		if err := r.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("read stored offsets: %w", err)
		}
		out[int(p)] = o
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read stored offsets: %w", err)
	}
	return out, nil
}

// Stored returns the highest Kafka offset stored for one partition of topic; ok is false
// when ClickHouse holds no row of it.
func (s *Sink) Stored(ctx context.Context, topic string, partition int) (offset int64, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, err := s.conn.Query(ctx, s.partition, topic, uint16(partition))
	if err != nil {
		return 0, false, fmt.Errorf("read stored offset of %s/%d: %w", topic, partition, err)
	}
	defer r.Close()
	for r.Next() {
		if err := r.Scan(&offset); err != nil {
			return 0, false, fmt.Errorf("read stored offset of %s/%d: %w", topic, partition, err)
		}
		ok = true
	}
	if err := r.Err(); err != nil {
		return 0, false, fmt.Errorf("read stored offset of %s/%d: %w", topic, partition, err)
	}
	return offset, ok, nil
}
