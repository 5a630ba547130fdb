package e2e

// The end-to-end count of a fault test: once the pipeline has drained, every identity ingest
// acknowledged is one row of detections or one downstream dead letter, no identity is a row
// twice, every rollup sums to the raw table's count, and no clear identifier is anywhere
// downstream of ingest.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/services/simulator/internal/report"
)

// tally is what the pipeline holds of a run.
type tally struct {
	rows       map[ident]int // identity -> rows in detections
	total      int           // rows in detections
	downstream map[ident]string
	ingestDLQ  int
}

func (p *pipeline) open(ctx context.Context) *report.Pipeline {
	p.t.Helper()
	conn, err := report.OpenWith(ctx, p.chConfig(p.db))
	require.NoError(p.t, err)
	p.t.Cleanup(func() { conn.Close() })
	return &report.Pipeline{Conn: conn, Database: p.db, Brokers: p.brokers, DLQTopic: p.dlq}
}

// tally reads every row identity of detections and the dead letters of the run's topic.
func (p *pipeline) tally(ctx context.Context, rp *report.Pipeline) (tally, error) {
	tl := tally{rows: map[ident]int{}, downstream: map[ident]string{}}
	rows, err := rp.Conn.Query(ctx, "SELECT sensor_id, event_id FROM `"+p.db+"`.detections")
	if err != nil {
		return tl, fmt.Errorf("read detections: %w", err)
	}
	for rows.Next() {
		var id ident
		if err := rows.Scan(&id.sensor, &id.event); err != nil {
			rows.Close()
			return tl, err
		}
		tl.rows[id]++
		tl.total++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return tl, err
	}
	err = report.ReadTopicWith(ctx, p.kafka, p.dlq, func(m kafkago.Message) {
		var r event.DLQ
		if event.DecodeDLQ(m.Value, &r) != nil {
			return
		}
		if r.Service == "ingest" {
			tl.ingestDLQ++
			return
		}
		tl.downstream[ident{r.SensorID, r.EventID}] = r.Service + "/" + r.Reason
	})
	return tl, err
}

// lag is what the group has not committed of topic (every partition).
func lag(ctx context.Context, conn kafka.Config, group, topic string) (int64, error) {
	ends, err := kafka.PartitionOffsets(ctx, conn, topic)
	if err != nil {
		return 0, err
	}
	tr, err := conn.Transport()
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Transport: tr, Timeout: 10 * time.Second}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	resp, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return 0, fmt.Errorf("fetch offsets of %s: %w", group, err)
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("fetch offsets of %s: %w", group, resp.Error)
	}
	committed := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return 0, fmt.Errorf("fetch offsets of %s/%d: %w", group, po.Partition, po.Error)
		}
		committed[po.Partition] = po.CommittedOffset
	}
	var n int64
	for part, end := range ends {
		c, ok := committed[part]
		if !ok || c < 0 {
			c = 0
		}
		n += max(0, end-c)
	}
	return n, nil
}

// waitDrained polls until the rows (and downstream dead letters) reach the acknowledged
// identities and the enricher and the writer have committed everything on their topics (so
// that no late duplicate is still on its way), and the row count holds still over two
// polls. The polls count (cheap, beside the writer's inserts); the tally reads every row
// once, at the end.
func (p *pipeline) waitDrained(ctx context.Context, rp *report.Pipeline, acked map[ident]bool, timeout time.Duration) tally {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last uint64 = 1<<64 - 1
	why, polls := "", 0
	for {
		var rows uint64
		var dlq int
		err := rp.Conn.QueryRow(ctx, "SELECT count() FROM `"+p.db+"`.detections").Scan(&rows)
		if err == nil {
			dlq, err = p.downstreamDLQ(ctx)
		}
		if err == nil {
			why = ""
			if rows+uint64(dlq) < uint64(len(acked)) {
				why = fmt.Sprintf("%d rows and %d downstream dead letters of %d acknowledged", rows, dlq, len(acked))
			}
			var lags []string
			for _, g := range []struct{ group, topic string }{{p.group("enricher"), p.raw}, {p.group("writer"), p.enriched}} {
				l, err := lag(ctx, p.kafka, g.group, g.topic)
				switch {
				case err != nil:
					lags = append(lags, err.Error())
					why = cmp.Or(why, err.Error())
				case l > 0:
					lags = append(lags, fmt.Sprintf("%s lag %d", g.group, l))
					why = cmp.Or(why, fmt.Sprintf("%s: %d messages of %s not committed", g.group, l, g.topic))
				}
			}
			if why == "" && rows == last {
				tl, err := p.tally(ctx, rp)
				require.NoError(p.t, err)
				return tl
			}
			last = rows
			if polls++; polls%10 == 0 {
				p.logf("draining: %d rows, %d dead letters, %v", rows, dlq, lags)
			}
		} else {
			why = err.Error()
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("not drained after %s: %s", timeout, why)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			p.t.Fatalf("not drained: %v (%s)", ctx.Err(), why)
		}
	}
}

// downstreamDLQ counts the dead letters of the enricher and the writer (the DLQ topic is
// the pipeline's own: everything on it is this test's).
func (p *pipeline) downstreamDLQ(ctx context.Context) (int, error) {
	n := 0
	err := report.ReadTopicWith(ctx, p.kafka, p.dlq, func(m kafkago.Message) {
		var r event.DLQ
		if event.DecodeDLQ(m.Value, &r) == nil && r.Service != "ingest" {
			n++
		}
	})
	return n, err
}

// checkCounted waits for the pipeline to drain and checks the count end to end against the
// identities ingest acknowledged; absent identities (refused ones) must be nowhere.
func (p *pipeline) checkCounted(ctx context.Context, tr *tracker, absent []ident) tally {
	t := p.t
	t.Helper()
	rp := p.open(ctx)
	acked := tr.ackedSet()
	tl := p.waitDrained(ctx, rp, acked, 6*time.Minute)
	p.logf("drained")
	p.logf("%s: %d rows, %d identities, %d downstream dead letters, %d ingest dead letters", tr, tl.total, len(tl.rows), len(tl.downstream), tl.ingestDLQ)

	// acknowledged = rows + downstream dead letters, identity by identity.
	var dups, missing, extra []string
	for id, n := range tl.rows {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s/%s ×%d", id.sensor, id.event, n))
		}
		if !acked[id] {
			extra = append(extra, id.sensor+"/"+id.event)
		}
	}
	for id := range acked {
		if tl.rows[id] == 0 {
			if _, ok := tl.downstream[id]; !ok {
				missing = append(missing, id.sensor+"/"+id.event)
			}
		}
	}
	for id, why := range tl.downstream {
		if tl.rows[id] > 0 {
			t.Errorf("%s/%s is a row and a dead letter (%s)", id.sensor, id.event, why)
		}
	}
	slices.Sort(dups)
	p.logf("duplicate identities in detections: %d (%d surplus rows)", len(dups), tl.total-len(tl.rows))
	// Every check is reported (assert, not require): one run tells all that is wrong.
	assert.Empty(t, first(dups, 10), "%d identities with more than one row", len(dups))
	assert.Empty(t, first(missing, 10), "%d acknowledged identities neither a row nor a dead letter", len(missing))
	assert.Empty(t, first(extra, 10), "%d rows of identities ingest never acknowledged", len(extra))
	assert.Equal(t, len(acked), len(tl.rows)+len(tl.downstream), "acknowledged = rows + downstream dead letters")
	for _, id := range absent {
		assert.Zero(t, tl.rows[id], "refused %s/%s stored", id.sensor, id.event)
		_, dl := tl.downstream[id]
		assert.False(t, dl, "refused %s/%s dead-lettered downstream", id.sensor, id.event)
	}

	p.checkRollups(ctx, rp, tl.total)
	p.logf("counted")
	p.checkLeaks(ctx, rp)
	p.logf("no clear identifier in topics, tables and logs")
	return tl
}

// checkRollups: every rollup's sum(events) is the count of the raw rows it is fed from.
func (p *pipeline) checkRollups(ctx context.Context, rp *report.Pipeline, rows int) {
	t := p.t
	t.Helper()
	db := "`" + p.db + "`."
	for _, c := range []struct{ rollup, raw string }{
		{"SELECT sum(events) FROM " + db + "detections_per_minute", "SELECT count() FROM " + db + "detections"},
		{"SELECT sum(events) FROM " + db + "tac_per_day", "SELECT countIf(tac != '') FROM " + db + "detections"},
		{"SELECT sum(events) FROM " + db + "device_presence_per_day", "SELECT countIf(device_id != '') FROM " + db + "detections"},
	} {
		var got, want uint64
		require.NoError(t, rp.Conn.QueryRow(ctx, c.rollup).Scan(&got), c.rollup)
		require.NoError(t, rp.Conn.QueryRow(ctx, c.raw).Scan(&want), c.raw)
		assert.Equal(t, want, got, "%s = %s", c.rollup, c.raw)
	}
	var n uint64
	require.NoError(t, rp.Conn.QueryRow(ctx, "SELECT count() FROM "+db+"detections").Scan(&n))
	require.EqualValues(t, rows, n)
}

// checkLeaks: no clear identifier the tracker sent is on the pipeline's topics, in its
// tables or in the logs of any process it started (the running ones are stopped first, so
// that their logs are complete).
func (p *pipeline) checkLeaks(ctx context.Context, rp *report.Pipeline) {
	t := p.t
	t.Helper()
	topics := []string{p.raw, p.enriched, p.dlq}
	if p.correlator {
		topics = append(topics, p.alerts)
	}
	for _, tp := range topics {
		n := 0
		require.NoError(t, report.ReadTopicWith(ctx, p.kafka, tp, func(m kafkago.Message) {
			n++
			if leak := p.ids.find(string(m.Key) + " " + string(m.Value)); leak != "" {
				t.Errorf("topic %s offset %d/%d holds a clear %s", tp, m.Partition, m.Offset, leak)
			}
		}))
	}
	scanTables(ctx, p.t, rp, p.ids, referenceTables)
	p.stopAll()
	p.mu.Lock()
	logs := slices.Clone(p.logs)
	p.mu.Unlock()
	for _, l := range logs {
		data, err := os.ReadFile(l)
		require.NoError(t, err)
		if leak := p.ids.find(string(data)); leak != "" {
			t.Errorf("log %s holds a clear %s", l, leak)
		}
	}
}

func first(xs []string, n int) []string {
	if len(xs) > n {
		return append(xs[:n:n], fmt.Sprintf("… %d more", len(xs)-n))
	}
	return xs
}

// referenceTables are loaded by vigiectl migrate from schemas/reference, never written by
// the pipeline: the leak scan skips them (TestPipelineEndToEnd scans them once).
var referenceTables = map[string]bool{"facilities": true, "operators": true, "sensors": true, "tac_models": true, "schema_migrations": true}
