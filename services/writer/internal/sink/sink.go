// Package sink writes detections blocks to ClickHouse over the native protocol and tells
// which events of a block detections already holds. The connection comes from
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
	conn         driver.Conn
	insert       string
	existingFrom string // the table Existing reads
	timeout      time.Duration
	settings     clickhouse.Settings // of every insert, with the token
	read         clickhouse.Settings // of the identity checks
}

// New returns a sink on conn for database on one server.
func New(conn driver.Conn, database string, queryTimeout time.Duration) (*Sink, error) {
	return NewCluster(conn, database, "", queryTimeout)
}

// NewCluster returns a sink on conn for database, on cluster when it is not empty (the
// schema migrated with `vigiectl migrate -clickhouse.cluster`, docs/clickhouse-cluster.md):
// inserts go through the Distributed detections table, synchronously
// (distributed_foreground_insert: the insert returns once every shard's replica stored its
// part, under the token), and identity checks read detections_local on every replica of
// every shard (clusterAllReplicas): a replica that has not fetched the newest part yet
// cannot hide an event another replica stored (a writer killed after an insert reads its
// batch again seconds later), and an unreachable replica is an error, not an event taken
// for new.
func NewCluster(conn driver.Conn, database, cluster string, queryTimeout time.Duration) (*Sink, error) {
	insert, err := chmigrate.Bind("INSERT INTO {db}.detections ("+rows.Columns+")", database)
	if err != nil {
		return nil, err
	}
	from, err := chmigrate.Bind("{db}.detections", database)
	if err != nil {
		return nil, err
	}
	settings := clickhouse.Settings{
		"insert_deduplicate": 1,
		"deduplicate_blocks_in_dependent_materialized_views": 1,
	}
	var read clickhouse.Settings
	if cluster != "" {
		if err := chmigrate.ValidateClusterName(cluster); err != nil {
			return nil, err
		}
		settings["distributed_foreground_insert"] = 1
		if from, err = chmigrate.Bind("clusterAllReplicas('"+cluster+"', {db}.detections"+chmigrate.LocalSuffix+")", database); err != nil {
			return nil, err
		}
		read = clickhouse.Settings{"skip_unavailable_shards": 0}
	}
	return &Sink{conn: conn, insert: insert, existingFrom: from, timeout: queryTimeout, settings: settings, read: read}, nil
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
