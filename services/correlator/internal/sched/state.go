package sched

import (
	"context"
	"fmt"
	"time"

	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Clock is the event-time clock: the latest observed_at in detections (zero when empty).
func (s *Scheduler) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(observed_at) FROM `%s`.detections", s.db)).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("read event clock: %w", err)
	}
	if t.Unix() <= 0 {
		return time.Time{}, nil
	}
	return t.UTC(), nil
}

// Watermark returns the end of the last window evaluated for rule (zero when none).
func (s *Scheduler) Watermark(ctx context.Context, rule string) (time.Time, error) {
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
