// Package report looks at what a simulation became downstream — rows in ClickHouse, dead
// letters on Kafka, alerts — waits until the pipeline has drained, and tells it in plain
// words. The demo report, the end-to-end test and the benchmark use it.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
)

// Pipeline says where a pipeline's results are.
type Pipeline struct {
	Conn     driver.Conn
	Database string
	Brokers  []string
	DLQTopic string
}

// Open connects to ClickHouse through the one opener of pkg/clickhouse, and pings it: a
// report or a test has nothing to wait for, so a server that does not answer is an error
// here. database is where the pipeline's tables are (statements name it themselves).
func Open(ctx context.Context, addr, database string) (driver.Conn, error) {
	cfg := clickhouse.DefaultConfig()
	cfg.Addrs, cfg.Database = []string{addr}, database
	return OpenWith(ctx, cfg)
}

// OpenWith is Open with a whole configuration (credentials, TLS).
func OpenWith(ctx context.Context, cfg clickhouse.Config) (driver.Conn, error) {
	conn, err := clickhouse.Open(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := clickhouse.Ping(conn)(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	return conn, nil
}

// table names a table of the pipeline's database.
func (p *Pipeline) table(name string) string { return "`" + p.Database + "`.`" + name + "`" }

// Rows counts the detections of a run (event ids start with runID + "-").
func (p *Pipeline) Rows(ctx context.Context, runID string) (int64, error) {
	var n uint64
	q := "SELECT count() FROM " + p.table("detections") + " WHERE startsWith(event_id, ?)"
	if err := p.Conn.QueryRow(ctx, q, runID+"-").Scan(&n); err != nil {
		return 0, fmt.Errorf("count detections: %w", err)
	}
	return int64(n), nil
}

// DeadLetters counts the run's dead-letter records by "service/reason".
type DeadLetters map[string]int64

// Total is the number of dead letters.
func (d DeadLetters) Total() int64 {
	var n int64
	for _, v := range d {
		n += v
	}
	return n
}

// DLQ reads the whole dead-letter topic and counts the records of the run.
func (p *Pipeline) DLQ(ctx context.Context, runID string) (DeadLetters, error) {
	out := DeadLetters{}
	err := ReadTopic(ctx, p.Brokers, p.DLQTopic, func(m kafkago.Message) {
		var r event.DLQ
		if event.DecodeDLQ(m.Value, &r) == nil && strings.HasPrefix(r.EventID, runID+"-") {
			out[r.Service+"/"+r.Reason]++
		}
	})
	return out, err
}

// ReadTopic calls fn for every message of every partition of topic, from the first to the
// end offset at the time of the call.
func ReadTopic(ctx context.Context, brokers []string, topic string, fn func(kafkago.Message)) error {
	return ReadTopicWith(ctx, kafka.Config{Brokers: brokers}, topic, fn)
}

// ReadTopicWith is ReadTopic through conn's security (TLS, SASL).
func ReadTopicWith(ctx context.Context, conn kafka.Config, topic string, fn func(kafkago.Message)) error {
	dialer, err := conn.Dialer()
	if err != nil {
		return err
	}
	ends, err := kafka.PartitionOffsets(ctx, conn, topic)
	if err != nil {
		return err
	}
	for part, end := range ends {
		if end == 0 {
			continue
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: conn.Brokers, Dialer: dialer, Topic: topic, Partition: part, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond})
		if err := r.SetOffset(kafkago.FirstOffset); err != nil {
			r.Close()
			return fmt.Errorf("seek %s/%d: %w", topic, part, err)
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			m, err := r.ReadMessage(rctx)
			cancel()
			if err != nil {
				r.Close()
				return fmt.Errorf("read %s/%d: %w", topic, part, err)
			}
			fn(m)
			if m.Offset >= end-1 {
				break
			}
		}
		if err := r.Close(); err != nil {
			return fmt.Errorf("close reader %s/%d: %w", topic, part, err)
		}
	}
	return nil
}

// Alert is one finding of the alerts table (latest version): the alert contract's type,
// which pkg/rulequality scores.
type Alert = event.Alert

// Alerts returns the latest version of every alert whose evidence overlaps [from, to).
func (p *Pipeline) Alerts(ctx context.Context, from, to time.Time) ([]Alert, error) {
	q := `SELECT alert_id, rule, severity, group_key, facilities, first_evidence_at, last_evidence_at,
	             window_start, window_end, evidence_count, evidence_event_ids, explanation, created_at, updated_at, version
	      FROM ` + p.table("alerts") + ` FINAL
	      WHERE last_evidence_at >= ? AND first_evidence_at < ?
	      ORDER BY rule, first_evidence_at, alert_id`
	rows, err := p.Conn.Query(ctx, q, from, to)
	if err != nil {
		return nil, fmt.Errorf("query alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		if err := rows.Scan(&a.ID, &a.Rule, &a.Severity, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt,
			&a.WindowStart, &a.WindowEnd, &a.EvidenceCount, &a.EvidenceIDs, &a.Explanation, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		for _, t := range []*time.Time{&a.FirstEvidenceAt, &a.LastEvidenceAt, &a.WindowStart, &a.WindowEnd, &a.CreatedAt, &a.UpdatedAt} {
			*t = t.UTC()
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Counts is where a run's events ended up.
type Counts struct {
	Rows int64
	DLQ  DeadLetters
}

// Drained reports whether every event ingest answered for is accounted for.
func (c Counts) Drained(answered int64) bool { return c.Rows+c.DLQ.Total() >= answered }

// WaitDrained polls until the run's rows plus dead letters reach answered (what ingest
// accepted and rejected), then until the alerts stop changing for settle. progress, when
// set, is called after each poll.
func (p *Pipeline) WaitDrained(ctx context.Context, runID string, answered int64, from, to time.Time, settle, timeout time.Duration, progress func(Counts, int)) (Counts, []Alert, error) {
	deadline := time.Now().Add(timeout)
	var c Counts
	var err error
	for {
		if c.Rows, err = p.Rows(ctx, runID); err != nil {
			return c, nil, err
		}
		if c.DLQ, err = p.DLQ(ctx, runID); err != nil {
			return c, nil, err
		}
		if progress != nil {
			progress(c, -1)
		}
		if c.Drained(answered) {
			break
		}
		if time.Now().After(deadline) {
			return c, nil, fmt.Errorf("not drained after %s: %d rows + %d dead letters of %d events", timeout, c.Rows, c.DLQ.Total(), answered)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return c, nil, err
		}
	}
	var alerts []Alert
	last, stableSince := -1, time.Now()
	for {
		if alerts, err = p.Alerts(ctx, from, to); err != nil {
			return c, nil, err
		}
		n := 0
		for _, a := range alerts {
			n += int(a.EvidenceCount) + 1
		}
		if progress != nil {
			progress(c, len(alerts))
		}
		if n != last {
			last, stableSince = n, time.Now()
		} else if time.Since(stableSince) >= settle {
			return c, alerts, nil
		}
		if time.Now().After(deadline) {
			return c, alerts, nil
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return c, alerts, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrNotFound: a planted finding without a matching alert.
var ErrNotFound = errors.New("no alert")

// Matches reports whether an alert reports a planted finding: the expected rule, and for a
// TAC rule the planted TAC, otherwise at least two of the planted facilities (all of them
// when fewer), within the period.
func Matches(a Alert, rule string, facilities, tacs []string) bool {
	if a.Rule != rule {
		return false
	}
	if len(tacs) > 0 && (rule == "TAC_SPREAD" || rule == "BATCH_RANGE" || rule == "NEW_TAC_NATIONAL") {
		for _, t := range tacs {
			if a.GroupKey == t || strings.HasPrefix(a.GroupKey, t) || strings.Contains(a.Explanation, t) {
				return true
			}
		}
		return false
	}
	need := min(2, len(facilities))
	have := 0
	for _, f := range facilities {
		if slices.Contains(a.Facilities, f) || a.GroupKey == f {
			have++
		}
	}
	return have >= need
}

// Watermarks returns, per scheduled rule, the end of the last window the correlator
// evaluated (its event-time progress); empty when the correlator has not written any.
func (p *Pipeline) Watermarks(ctx context.Context) (map[string]time.Time, error) {
	rows, err := p.Conn.Query(ctx, "SELECT rule, max(window_end) FROM "+p.table("correlator_watermarks")+" GROUP BY rule")
	if err != nil {
		return nil, fmt.Errorf("query watermarks: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var r string
		var t time.Time
		if err := rows.Scan(&r, &t); err != nil {
			return nil, fmt.Errorf("scan watermark: %w", err)
		}
		out[r] = t.UTC()
	}
	return out, rows.Err()
}
