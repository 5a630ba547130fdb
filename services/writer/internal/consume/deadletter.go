package consume

// Dead letters: what cannot be stored goes to the dead-letter topic, before any row that
// follows it reaches ClickHouse.

import (
	"context"
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"go.uber.org/zap"
)

// sendDead produces the queued dead letters (acks=all) and empties the queue.
func (w *Writer) sendDead(ctx context.Context, p *partition) error {
	if len(p.dead) == 0 {
		return nil
	}
	if err := w.dlq.Write(ctx, p.dead...); err != nil {
		return fmt.Errorf("dead-letter %d messages: %w", len(p.dead), err)
	}
	p.dead = p.dead[:0]
	return nil
}

// deadLetter queues the dead-letter record of m. e, when not nil, is what was decoded of it.
func (p *partition) deadLetter(w *Writer, m *kafka.Message, reason string, cause error, e *event.Enriched) {
	w.m.dlq.WithLabelValues(reason).Inc()
	p.log.Warn("dead-lettering message", zap.Int64("offset", m.Offset), zap.String("reason", reason), zap.Error(cause))
	rec := event.DLQ{
		Reason:   reason,
		Service:  "writer",
		Error:    cause.Error(),
		FailedAt: event.NewTime(time.Now()),
		Source:   &event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
		// The message itself stays where it is, at Source: the record never copies it.
		Body: &event.Body{Bytes: len(m.Value)},
	}
	if e == nil {
		var d event.Enriched
		if event.DecodeEnriched(m.Value, &d) == nil {
			e = &d
		}
	}
	if e != nil {
		rec.SensorID, rec.EventID = e.SensorID, e.EventID
	}
	value, _ := event.EncodeDLQ(&rec) // strings and numbers only: it cannot fail
	p.dead = append(p.dead, kafka.Message{Key: m.Key, Value: value})
}
