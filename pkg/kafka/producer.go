package kafka

import (
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

// ProducerConfig configures a synchronous producer.
type ProducerConfig struct {
	Brokers []string `yaml:"brokers"`
	// BatchSize is the most messages sent to one partition in one request.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is how long a partial batch waits for more messages. kafka-go's default
	// of one second would add a second to every synchronous write.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// WriteTimeout bounds one produce request.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxAttempts is how many times kafka-go tries a produce before giving up.
	MaxAttempts int `yaml:"max_attempts"`
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
}

// DefaultProducerConfig suits request/response producers such as ingest.
func DefaultProducerConfig() ProducerConfig {
	return ProducerConfig{
		Brokers:      []string{"127.0.0.1:19092"},
		BatchSize:    1000,
		BatchTimeout: 2 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
		Compression:  "lz4",
	}
}

var codecs = map[string]compress.Compression{
	"none": 0, "": 0,
	"gzip":   kafkago.Gzip,
	"snappy": kafkago.Snappy,
	"lz4":    kafkago.Lz4,
	"zstd":   kafkago.Zstd,
}

// Validate names the bad field; prefix is the field's place in the service's config.
func (c ProducerConfig) Validate(prefix string) error {
	switch {
	case len(c.Brokers) == 0:
		return fmt.Errorf("%s.brokers: must not be empty", prefix)
	case c.BatchSize <= 0:
		return fmt.Errorf("%s.batch_size: must be positive", prefix)
	case c.BatchTimeout <= 0:
		return fmt.Errorf("%s.batch_timeout: must be positive", prefix)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("%s.write_timeout: must be positive", prefix)
	case c.MaxAttempts <= 0:
		return fmt.Errorf("%s.max_attempts: must be positive", prefix)
	}
	if _, ok := codecs[c.Compression]; !ok {
		return fmt.Errorf("%s.compression: %q is not none, gzip, snappy, lz4 or zstd", prefix, c.Compression)
	}
	return nil
}

// NewWriter returns a kafka-go writer that never loses an acknowledged message: synchronous
// (WriteMessages returns only when the broker acknowledged or failed), acknowledged by all
// in-sync replicas, keys hashed with murmur2 like the Java client so that every client
// agrees on a key's partition. topic may be empty when each message names its own.
func NewWriter(c ProducerConfig, topic string) (*kafkago.Writer, error) {
	if err := c.Validate("producer"); err != nil {
		return nil, err
	}
	if topic == "" && len(c.Brokers) == 0 {
		return nil, errors.New("producer: no brokers")
	}
	return &kafkago.Writer{
		Addr:                   kafkago.TCP(c.Brokers...),
		Topic:                  topic,
		Balancer:               kafkago.Murmur2Balancer{},
		RequiredAcks:           kafkago.RequireAll,
		Async:                  false,
		BatchSize:              c.BatchSize,
		BatchBytes:             16 << 20,
		BatchTimeout:           c.BatchTimeout,
		WriteTimeout:           c.WriteTimeout,
		ReadTimeout:            c.WriteTimeout,
		MaxAttempts:            c.MaxAttempts,
		WriteBackoffMin:        50 * time.Millisecond,
		WriteBackoffMax:        time.Second,
		Compression:            codecs[c.Compression],
		AllowAutoTopicCreation: false,
	}, nil
}
