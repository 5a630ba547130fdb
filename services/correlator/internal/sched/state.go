package sched

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/clock"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Clock is the event-time clock: the watermark of the sensors' clocks in detections (see
// internal/clock; zero when empty), never moving back within a process. One query reads
// each sensor's latest event time and latest receipt among its events in bounds; after the
// first tick only from the previous clock minus what a source holding the clock can lag
// behind it (max_skew + idle_timeout + source_lateness), so a tick reads the last minutes.
func (s *Scheduler) Clock(ctx context.Context) (time.Time, error) {
	if st, ok := s.sink.(replayStore); ok {
		return st.clock(), nil
	}
	ck := s.cfg.EventClock
	now := s.now().UTC()
	from := now.Add(-ck.Retention)
	if prev := s.clock.Load(); prev != 0 {
		if t := time.UnixMilli(prev).Add(-ck.MaxSkew - ck.IdleTimeout - ck.SourceLateness); t.After(from) {
			from = t
		}
	}
	q := fmt.Sprintf("SELECT toString(sensor_id), max(observed_at), max(received_at) FROM `%[1]s`.detections "+
		"WHERE observed_at >= %[2]s AND observed_at <= %[3]s AND received_at <= %[3]s "+
		"AND observed_at <= received_at + toIntervalMillisecond(%[4]d) AND observed_at >= received_at - toIntervalMillisecond(%[5]d) "+
		"GROUP BY sensor_id",
		s.db, dt64(from), dt64(now.Add(ck.MaxSkew)), ck.MaxSkew.Milliseconds(), ck.Retention.Milliseconds())
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return time.Time{}, fmt.Errorf("read event clock: %w", err)
	}
	defer rows.Close()
	var readings []clock.Reading
	for rows.Next() {
		var r clock.Reading
		var t, arrival time.Time
		if err := rows.Scan(&r.Source, &t, &arrival); err != nil {
			return time.Time{}, fmt.Errorf("read event clock: %w", err)
		}
		r.Clock, r.Arrival = t.UnixMilli(), arrival.UnixMilli()
		readings = append(readings, r)
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, fmt.Errorf("read event clock: %w", err)
	}
	prev := s.clock.Load()
	wm, holding, _ := ck.Watermark(readings, prev, nil)
	s.m.sources.Set(float64(holding))
	if wm <= 0 {
		return time.Time{}, nil
	}
	s.clock.Store(wm)
	return time.UnixMilli(wm).UTC(), nil
}

// Watermark returns the end of the last window evaluated for rule (zero when none).
func (s *Scheduler) Watermark(ctx context.Context, rule string) (time.Time, error) {
	if st, ok := s.sink.(replayStore); ok {
		return st.watermark(rule), nil
	}
	var t time.Time
	q := fmt.Sprintf("SELECT max(window_end) FROM `%s`.correlator_watermarks WHERE rule = ?", s.db)
	if err := s.conn.QueryRow(ctx, q, rule).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read watermark of %s: %w", rule, err)
	}
	if t.Unix() <= 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

func (s *Scheduler) setWatermark(ctx context.Context, rule string, end time.Time, alerts int) error {
	if bound := s.now().Add(s.cfg.EventClock.MaxSkew); end.After(bound) {
		// Unreachable while steps end at or before the clock, which is bounded: kept so
		// that no code path can persist a watermark from the future.
		return fmt.Errorf("watermark of %s at %s is beyond now + max_skew (%s): not written", rule, end.Format(event.TimeLayout), bound.Format(event.TimeLayout))
	}
	if st, ok := s.sink.(replayStore); ok {
		st.setWatermark(rule, end)
		return nil
	}
	q := fmt.Sprintf("INSERT INTO `%s`.correlator_watermarks (rule, window_end, alerts)", s.db)
	b, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("prepare watermark: %w", err)
	}
	if err := b.Append(rule, end, uint32(alerts)); err != nil {
		_ = b.Abort()
		return fmt.Errorf("append watermark: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("write watermark of %s: %w", rule, err)
	}
	return nil
}

// loadWatermark is Watermark, except that a watermark beyond now + max_skew (written by a
// version without bounded clocks after an event from the future) is discarded: logged,
// counted, deleted, and the rule starts as one without a watermark.
func (s *Scheduler) loadWatermark(ctx context.Context, rule string) (time.Time, error) {
	wm, err := s.Watermark(ctx, rule)
	if err != nil {
		return wm, err
	}
	bound := s.now().Add(s.cfg.EventClock.MaxSkew)
	if !wm.After(bound) {
		return wm, nil
	}
	q := fmt.Sprintf("ALTER TABLE `%s`.correlator_watermarks DELETE WHERE rule = ? AND window_end > ? SETTINGS mutations_sync = 1", s.db)
	if err := s.conn.Exec(ctx, q, rule, bound); err != nil {
		return time.Time{}, fmt.Errorf("discard the future watermark of %s: %w", rule, err)
	}
	s.m.discarded.WithLabelValues(rule).Inc()
	s.logger.Warn("watermark from the future discarded", zap.String("rule", rule), zap.Time("watermark", wm), zap.Time("bound", bound))
	return s.Watermark(ctx, rule)
}

// saveWatermark records how far c is done, when it moved.
func (s *Scheduler) saveWatermark(ctx context.Context, c *catchUp, alerts int) error {
	wm := c.covered()
	if !wm.After(c.saved) {
		return nil
	}
	err := s.retry(ctx, c.rule.ID, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, s.cfg.EvaluationTimeout)
		defer cancel()
		return s.setWatermark(qctx, c.rule.ID, wm, alerts)
	})
	if err != nil {
		return err
	}
	c.saved = wm
	s.m.watermark.WithLabelValues(c.rule.ID).Set(float64(wm.Unix()))
	return nil
}

// openAlerts returns the latest version of r's findings whose window ends at or after
// since, by group key.
func (s *Scheduler) openAlerts(ctx context.Context, r *rules.Rule, since time.Time) (map[string]alert.Alert, error) {
	if st, ok := s.sink.(replayStore); ok {
		return st.open(r.ID, since), nil
	}
	q := fmt.Sprintf("SELECT "+alert.Columns+" FROM `%s`.alerts FINAL WHERE rule = ? AND window_end >= ? ORDER BY window_end", s.db)
	rows, err := s.conn.Query(ctx, q, r.ID, since)
	if err != nil {
		return nil, fmt.Errorf("read open alerts of %s: %w", r.ID, err)
	}
	defer rows.Close()
	out := map[string]alert.Alert{}
	for rows.Next() {
		var a alert.Alert
		if err := rows.Scan(&a.ID, &a.Rule, &a.Severity, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt,
			&a.WindowStart, &a.WindowEnd, &a.EvidenceIDs, &a.EvidenceCount, &a.Explanation, &a.CreatedAt, &a.UpdatedAt, &a.Version); err != nil {
			return nil, fmt.Errorf("scan alert: %w", err)
		}
		for _, t := range []*time.Time{&a.FirstEvidenceAt, &a.LastEvidenceAt, &a.WindowStart, &a.WindowEnd, &a.CreatedAt, &a.UpdatedAt} {
			*t = t.UTC()
		}
		out[a.GroupKey] = a
	}
	return out, rows.Err()
}
