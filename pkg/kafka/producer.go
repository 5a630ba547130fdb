package kafka

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

// Acknowledgement levels accepted in ProducerConfig.Acks.
const (
	// AcksAll waits for every in-sync replica: with min.insync.replicas 2 on a replication
	// factor of 3, an acknowledged message survives the loss of any one broker.
	AcksAll = "all"
	// AcksLeader waits for the partition leader only.
	AcksLeader = "leader"
	// AcksNone does not wait at all: a message may be lost without an error.
	AcksNone = "none"
)

// ProducerConfig is the `producer:` block of a service that produces.
type ProducerConfig struct {
	// Acks is all (default), leader or none.
	Acks string `yaml:"acks"`
	// BatchSize is the most messages sent to one partition in one request.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is how long a partial batch waits for more messages. kafka-go's default
	// of one second would add a second to every synchronous write.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// WriteTimeout bounds one produce request.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxAttempts is how many times kafka-go tries a produce before Write returns an error.
	MaxAttempts int `yaml:"max_attempts"`
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
}

// DefaultProducerConfig waits for all in-sync replicas and suits request/response producers
// such as ingest: small batches that leave within 2 ms.
func DefaultProducerConfig() ProducerConfig {
	return ProducerConfig{
		Acks:         AcksAll,
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

var acks = map[string]kafkago.RequiredAcks{
	"":         kafkago.RequireAll,
	AcksAll:    kafkago.RequireAll,
	AcksLeader: kafkago.RequireOne,
	AcksNone:   kafkago.RequireNone,
}

// Validate names the bad key; prefix is the block's place in the service's configuration,
// normally "producer".
func (c ProducerConfig) Validate(prefix string) error {
	if _, ok := acks[c.Acks]; !ok {
		return fmt.Errorf("%s.acks: %q is not all, leader or none", prefix, c.Acks)
	}
	switch {
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

// Producer writes messages synchronously: Write returns once the brokers acknowledged
// every message (at the configured acks) or with the error that stopped it, never
// before. Keys are hashed with murmur2 like the Java client, so that every client agrees
// on a key's partition; topics are never created by producing to them.
type Producer struct {
	w         *kafkago.Writer
	transport *kafkago.Transport
}

// NewProducer returns a producer to topic, or, when topic is "", to the topic each message
// names. It fails on a bad configuration (including unreadable TLS or SASL files); a broker
// that is down is not an error here, Write reports it.
func NewProducer(conn Config, cfg ProducerConfig, topic string) (*Producer, error) {
	if err := conn.Validate("kafka"); err != nil {
		return nil, err
	}
	if err := cfg.Validate("producer"); err != nil {
		return nil, err
	}
	t, err := conn.Transport()
	if err != nil {
		return nil, err
	}
	return &Producer{
		transport: t,
		w: &kafkago.Writer{
			Addr:                   kafkago.TCP(conn.Brokers...),
			Topic:                  topic,
			Balancer:               &routeBalancer{},
			RequiredAcks:           acks[cfg.Acks],
			Async:                  false,
			BatchSize:              cfg.BatchSize,
			BatchBytes:             16 << 20,
			BatchTimeout:           cfg.BatchTimeout,
			WriteTimeout:           cfg.WriteTimeout,
			ReadTimeout:            cfg.WriteTimeout,
			MaxAttempts:            cfg.MaxAttempts,
			WriteBackoffMin:        50 * time.Millisecond,
			WriteBackoffMax:        time.Second,
			Compression:            codecs[cfg.Compression],
			AllowAutoTopicCreation: false,
			Transport:              t,
		},
	}, nil
}

// Write sends msgs and returns once all of them are acknowledged, or the first error. A
// failed Write may have delivered some of the messages: callers that retry it deliver at
// least once, and the copies travel on: nothing downstream removes them yet.
func (p *Producer) Write(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		if p.w.Topic != "" {
			return fmt.Errorf("produce to %s: %w", p.w.Topic, err)
		}
		return fmt.Errorf("produce: %w", err)
	}
	return nil
}

// Topic is the producer's topic, "" when each message names its own.
func (p *Producer) Topic() string { return p.w.Topic }

// Close flushes nothing (writes are synchronous), closes the writer and its connections.
func (p *Producer) Close() error {
	err := p.w.Close()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	return nil
}

// SetTransport replaces the producer's transport; tests use it to cut connections. Call it
// before the first Write. The caller owns t: Close does not close its connections.
func (p *Producer) SetTransport(t kafkago.RoundTripper) {
	if p.transport != nil {
		p.transport.CloseIdleConnections()
		p.transport = nil
	}
	p.w.Transport = t
}
