package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/kafka"
)

func TestConsumerConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, kafka.DefaultConsumerConfig("g").Validate("consumer"))
	cfg := kafka.DefaultConsumerConfig("")
	require.ErrorContains(t, cfg.Validate("consumer"), "consumer.group_id")
}
