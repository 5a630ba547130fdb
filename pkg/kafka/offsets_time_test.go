package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/kafka"
)

func TestOffsetsForTime(t *testing.T) {
	ctx := context.Background()
	conn := connConfig(t)
	topic := newTopic(t, conn, 2)
	p, err := kafka.NewProducer(conn, kafka.DefaultProducerConfig(), topic)
	require.NoError(t, err)
	defer p.Close()

	// Ten messages an hour apart on the key of partition 0 (whichever it is), none on the other.
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("sensor"), Value: []byte(strconv.Itoa(i)), Time: base.Add(time.Duration(i) * time.Hour)}
	}
	require.NoError(t, p.Write(ctx, msgs...))
	end, err := kafka.PartitionOffsets(ctx, conn, topic)
	require.NoError(t, err)
	full, empty := 0, 1
	if end[0] == 0 {
		full, empty = 1, 0
	}
	require.EqualValues(t, 10, end[full])

	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{base.Add(-time.Hour), 0}, // before everything: the first offset
		{base, 0},                 // at a timestamp: that message
		{base.Add(3*time.Hour - time.Millisecond), 3}, // between: the next one
		{base.Add(9 * time.Hour), 9},
		{base.Add(10 * time.Hour), 10}, // after everything: the end offset
	} {
		got, err := kafka.OffsetsForTime(ctx, conn, topic, tc.at)
		require.NoError(t, err)
		require.Equal(t, map[int]int64{full: tc.want, empty: 0}, got, "at %s", tc.at)
	}
	_, err = kafka.OffsetsForTime(ctx, conn, topic+"-missing", base)
	require.Error(t, err)
}
