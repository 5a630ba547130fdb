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
	settings  clickhouse.Settings // of every insert, with the token
	read      clickhouse.Settings // of the offset queries
}

// New returns a sink on conn for database on one server.
func New(conn driver.Conn, database string, queryTimeout time.Duration) (*Sink, error) {
	return NewCluster(conn, database, "", queryTimeout)
}

// NewCluster returns a sink on conn for database, on cluster when it is not empty (the
// schema migrated with `vigiectl migrate -clickhouse.cluster`, docs/clickhouse-cluster.md):
// inserts go through the Distributed detections table, synchronously
// (distributed_foreground_insert: the insert returns once every shard's replica stored its
// part, under the token), and the stored offsets are read from detections_local on every
// replica of every shard (clusterAllReplicas), so that a replica that has not fetched the
// newest part yet cannot make the writer read again, under other tokens, what another
// replica already stored; an unreachable replica is an error, not a lower offset.
func NewCluster(conn driver.Conn, database, cluster string, queryTimeout time.Duration) (*Sink, error) {
	insert, err := chmigrate.Bind("INSERT INTO {db}.detections ("+rows.Columns+")", database)
	if err != nil {
		return nil, err
	}
	// Read from detections' kafka_offsets projection (stored in each part, atomic with its
	// rows), not from the writer_offsets view (a separate insert that can lag the rows).
	from := "{db}.detections"
	settings := clickhouse.Settings{
		"insert_deduplicate": 1,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
	}
	var read clickhouse.Settings
	if cluster != "" {
		if err := chmigrate.ValidateClusterName(cluster); err != nil {
			return nil, err
		}
		from = "clusterAllReplicas('" + cluster + "', {db}.detections" + chmigrate.LocalSuffix + ")"
		settings["distributed_foreground_insert"] = 1
		read = clickhouse.Settings{"skip_unavailable_shards": 0}
	}
	offsets, err := chmigrate.Bind("SELECT kafka_partition, max(kafka_offset) FROM "+from+" WHERE kafka_topic = ? GROUP BY kafka_partition", database)
	if err != nil {
		return nil, err
	}
	partition, err := chmigrate.Bind("SELECT max(kafka_offset) FROM "+from+" WHERE kafka_topic = ? AND kafka_partition = ? GROUP BY kafka_partition", database)
	if err != nil {
		return nil, err
	}
	return &Sink{conn: conn, insert: insert, offsets: offsets, partition: partition, timeout: queryTimeout, settings: settings, read: read}, nil
}

// Insert writes blocks as one insert (one data block on the wire) whose deduplication
// token is token: ClickHouse drops a block it has already stored under the same token, in
// detections and, through deduplicate_blocks_in_dependent_materialized_views, in every
// rollup fed from it.
func (s *Sink) Insert(ctx context.Context, blocks []*rows.Block, token string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	settings := clickhouse.Settings{"insert_deduplication_token": token}
	for k, v := range s.settings {
		settings[k] = v
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
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
	if s.read != nil {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(s.read))
	}
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
	if s.read != nil {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(s.read))
	}
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
