// Package sink writes detections blocks to ClickHouse over the native protocol and reads
// back the highest Kafka offset ClickHouse holds per partition.
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

// Config says where ClickHouse is.
type Config struct {
	Addr     []string `yaml:"addr"`
	Database string   `yaml:"database"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	// DialTimeout bounds connecting; QueryTimeout bounds one insert or query attempt.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxOpenConns caps concurrent inserts (one per partition being flushed).
	MaxOpenConns int `yaml:"max_open_conns"`
	// Compression of blocks on the wire: none, lz4 or zstd.
	Compression string `yaml:"compression"`
}

// DefaultConfig suits the local server started by `make up`.
func DefaultConfig() Config {
	return Config{
		Addr:         []string{"127.0.0.1:19000"},
		Database:     "vigie",
		Username:     "default",
		DialTimeout:  5 * time.Second,
		QueryTimeout: 60 * time.Second,
		MaxOpenConns: 8,
		Compression:  "lz4",
	}
}

// Validate names the bad field.
func (c Config) Validate(prefix string) error {
	switch {
	case len(c.Addr) == 0:
		return fmt.Errorf("%s.addr: must not be empty", prefix)
	case c.DialTimeout <= 0:
		return fmt.Errorf("%s.dial_timeout: must be positive", prefix)
	case c.QueryTimeout <= 0:
		return fmt.Errorf("%s.query_timeout: must be positive", prefix)
	case c.MaxOpenConns <= 0:
		return fmt.Errorf("%s.max_open_conns: must be positive", prefix)
	}
	if _, err := chmigrate.Bind("", c.Database); err != nil {
		return fmt.Errorf("%s.database: %w", prefix, err)
	}
	if _, ok := compressions[c.Compression]; !ok {
		return fmt.Errorf("%s.compression: %q is not none, lz4 or zstd", prefix, c.Compression)
	}
	return nil
}

var compressions = map[string]clickhouse.CompressionMethod{
	"none": clickhouse.CompressionNone, "lz4": clickhouse.CompressionLZ4, "zstd": clickhouse.CompressionZSTD,
}

// Open connects to ClickHouse and pings it.
func Open(ctx context.Context, c Config) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:             c.Addr,
		Auth:             clickhouse.Auth{Username: c.Username, Password: c.Password},
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.QueryTimeout,
		MaxOpenConns:     c.MaxOpenConns,
		MaxIdleConns:     c.MaxOpenConns,
		Compression:      &clickhouse.Compression{Method: compressions[c.Compression]},
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
	})
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", c.Addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", c.Addr, err)
	}
	return conn, nil
}

// Sink inserts blocks into {database}.detections.
type Sink struct {
	conn    driver.Conn
	insert  string
	offsets string
	timeout time.Duration
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
	return &Sink{conn: conn, insert: insert, offsets: offsets, timeout: queryTimeout}, nil
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

// Ping checks that ClickHouse answers; the writer's readiness uses it.
func (s *Sink) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }
