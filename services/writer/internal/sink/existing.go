package sink

// The writer's identity check: which events of a block detections already holds.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vigie/vigie/services/writer/internal/rows"
)

// Identity is what makes an event one event: the sensor that saw it and the id it gave it.
type Identity struct{ SensorID, EventID string }

// timeGap is the widest gap between two observed_at values of a block that one range of
// the check's time condition covers: a live block is one range of a few seconds, a block
// with late events a few ranges, never the months in between.
const timeGap = time.Minute

// Existing returns the identities among b's rows that detections already holds. It reads
// only the parts and granules whose observed_at can match — the table is ordered by
// (facility_id, observed_at), and duplicates of an event carry its observed_at — and
// compares the identities exactly, so a second delivery is found for as long as the first
// is kept: the table itself is the state.
func (s *Sink) Existing(ctx context.Context, b *rows.Block) (map[Identity]struct{}, error) {
	if b.Len() == 0 {
		return nil, nil
	}
	query := s.existingQuery(b)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	settings := clickhouse.Settings{"max_query_size": len(query) + 1024}
	for k, v := range s.read {
		settings[k] = v
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	r, err := s.conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("check %d identities: %w", b.Len(), err)
	}
	defer r.Close()
	var found map[Identity]struct{}
	for r.Next() {
		var id Identity
		if err := r.Scan(&id.SensorID, &id.EventID); err != nil {
			return nil, fmt.Errorf("check %d identities: %w", b.Len(), err)
		}
		if found == nil {
			found = map[Identity]struct{}{}
		}
		found[id] = struct{}{}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("check %d identities: %w", b.Len(), err)
	}
	return found, nil
}

// existingQuery is
//
//	SELECT sensor_id, event_id FROM detections
//	WHERE (observed_at BETWEEN a1 AND b1 OR ...) AND (sensor_id, event_id) IN ((s, e), ...)
//
// written by hand rather than bound by the driver: a block's identities make a query of a
// few hundred kilobytes, which reflection-based binding formats several times slower.
func (s *Sink) existingQuery(b *rows.Block) string {
	ms := make([]int64, b.Len())
	for i, t := range b.ObservedAt {
		ms[i] = t.UnixMilli()
	}
	slices.Sort(ms)
	var q strings.Builder
	q.Grow(64 + b.Len()*(len(b.SensorID[0])+len(b.EventID[0])+8))
	q.WriteString("SELECT sensor_id, event_id FROM ")
	q.WriteString(s.existingFrom)
	q.WriteString(" WHERE (")
	gap := timeGap.Milliseconds()
	for i := 0; i < len(ms); {
		j := i
		for j+1 < len(ms) && ms[j+1]-ms[j] <= gap {
			j++
		}
		if i > 0 {
			q.WriteString(" OR ")
		}
		q.WriteString("observed_at BETWEEN fromUnixTimestamp64Milli(")
		q.WriteString(strconv.FormatInt(ms[i], 10))
		q.WriteString(", 'UTC') AND fromUnixTimestamp64Milli(")
		q.WriteString(strconv.FormatInt(ms[j], 10))
		q.WriteString(", 'UTC')")
		i = j + 1
	}
	q.WriteString(") AND (sensor_id, event_id) IN (")
	for i := range b.Len() {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('(')
		quote(&q, b.SensorID[i])
		q.WriteByte(',')
		quote(&q, b.EventID[i])
		q.WriteByte(')')
	}
	q.WriteByte(')')
	return q.String()
}

// quote writes s as a ClickHouse string literal.
func quote(q *strings.Builder, s string) {
	q.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			q.WriteByte('\\')
			q.WriteByte(c)
		case 0:
			q.WriteString(`\0`)
		default:
			q.WriteByte(c)
		}
	}
	q.WriteByte('\'')
}
