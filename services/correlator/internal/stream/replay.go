package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Replay runs the streaming rules among rs over the events of database's detections as the
// correlator ran them: each Kafka partition's events in offset order (the writer records
// them) through an engine of its own, from an empty state. The events of the rules' longest
// horizon (and the lateness allowed) before from build the state without emitting; those
// observed in [from, to) emit. It writes nothing, and returns the latest version of each
// finding in the order first raised and the number of events read. It is what `vigiectl
// rules test` runs on a database.
func Replay(ctx context.Context, conn driver.Conn, database string, rs []*rules.Rule, ref *reference.Snapshot, cfg EngineConfig, from, to time.Time) ([]alert.Alert, int, error) {
	var streaming []*rules.Rule
	var horizon time.Duration
	for _, r := range rs {
		if r.Mode == rules.Streaming {
			streaming = append(streaming, r)
			horizon = max(horizon, r.Horizon())
		}
	}
	if len(streaming) == 0 {
		return nil, 0, nil
	}
	// Every event, not only those the rules' filters keep: each feeds its sensor's clock,
	// and so the engine's watermark (eviction, lateness), as it did in the correlator.
	q := fmt.Sprintf("SELECT %s, kafka_topic, kafka_partition FROM `%s`.detections WHERE observed_at >= %s AND observed_at < %s "+
		"ORDER BY kafka_topic, kafka_partition, kafka_offset", rebuildColumns, database, dt64(from.Add(-horizon-cfg.Clock.Lateness)), dt64(to))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("replay detections: %w", err)
	}
	defer rows.Close()
	var (
		found  []alert.Alert
		latest = map[string]int{}
		eng    *Engine
		topic  string
		part   uint16
		out    []alert.Alert
		n      int
	)
	for rows.Next() {
		var e event.Enriched
		var t string
		var p uint16
		if _, err := scanDetection(rows, &e, &t, &p); err != nil {
			return nil, n, fmt.Errorf("replay detections: scan: %w", err)
		}
		if eng == nil || t != topic || p != part {
			eng, topic, part = NewEngineConfig(streaming, ref, cfg), t, p
		}
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, n, ctx.Err()
		}
		out = eng.Observe(&e, !e.ObservedAt.Before(from), out[:0])
		for _, a := range out {
			if i, ok := latest[a.ID]; ok {
				found[i] = a
				continue
			}
			latest[a.ID] = len(found)
			found = append(found, a)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, n, fmt.Errorf("replay detections: %w", err)
	}
	return found, n, nil
}
