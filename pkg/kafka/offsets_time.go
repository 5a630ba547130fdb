package kafka

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigie/vigie/pkg/retry"
)

// OffsetsForTime returns, for each partition of topic, the offset of the first message whose
// timestamp is at or after t, or the partition's end offset when no message is that recent:
// where to start reading to see what the topic holds since t (ingest rebuilds its
// deduplication window from detections.raw.v1 with it). Timestamps are the producers'
// (CreateTime, the topics' default). Answers of a broker that does not lead a partition
// yet are retried for up to ten seconds, as PartitionOffsets does.
func OffsetsForTime(ctx context.Context, c Config, topic string, t time.Time) (map[int]int64, error) {
	cl, err := newClient(c, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	var out map[int]int64
	err = retry.Do(ctx, settle, func(ctx context.Context) error {
		end, err := partitionOffsets(ctx, c, cl.Client, topic)
		if err != nil {
			return err
		}
		req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
		for p := range end {
			req.Topics[topic] = append(req.Topics[topic], kafkago.TimeOffsetOf(p, t))
		}
		resp, err := cl.ListOffsets(ctx, req)
		if err != nil {
			return fmt.Errorf("list offsets %s at %s: %w", topic, t.UTC().Format(time.RFC3339), err)
		}
		out = make(map[int]int64, len(end))
		for p, last := range end {
			out[p] = last
		}
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				return fmt.Errorf("list offsets %s/%d at %s: %w", topic, p.Partition, t.UTC().Format(time.RFC3339), p.Error)
			}
			// The broker answers offset -1 when no message is at or after t.
			for off := range p.Offsets {
				if off >= 0 && off < out[p.Partition] {
					out[p.Partition] = off
				}
			}
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}
