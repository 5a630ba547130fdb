// Package app wires the correlator into the service skeleton (pkg/service): configuration,
// rules and reference data, ClickHouse, the streaming consumer, the scheduler and the
// alert sinks, under one lifecycle.
package app

import (
	"errors"
	"time"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/services/correlator/internal/clock"
	"github.com/vigie/vigie/services/correlator/internal/sched"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Config is the correlator's configuration. The shared blocks (admin, log, kafka, consumer,
// producer, clickhouse, topics) have the same keys in every service (top README).
type Config struct {
	service.Base `yaml:",inline"`

	Kafka      kafka.Config         `yaml:"kafka"`
	Consumer   kafka.ConsumerConfig `yaml:"consumer"`
	Producer   kafka.ProducerConfig `yaml:"producer"`
	Topics     Topics               `yaml:"topics"`
	ClickHouse clickhouse.Config    `yaml:"clickhouse"`

	// RulesDir is a directory of rule files; empty means the rules built into the binary.
	// SIGHUP reloads it (see README: what a reload changes).
	RulesDir string `yaml:"rules_dir"`
	// ReferenceDir is a reference data directory; empty means the built-in data.
	ReferenceDir string `yaml:"reference_dir"`
	// Streaming and Scheduled switch the two evaluation modes (both on by default).
	Streaming bool `yaml:"streaming"`
	Scheduled bool `yaml:"scheduled"`

	Scheduler sched.Config `yaml:"scheduler"`
	// EventClock bounds the event-time clocks of both modes (internal/clock).
	EventClock clock.Config `yaml:"event_clock"`
	// Dedup bounds the identities each partition remembers to ignore second deliveries.
	Dedup Dedup `yaml:"dedup"`
	// State bounds each partition's streaming state (stream.StateConfig).
	State stream.StateConfig `yaml:"state"`
}

// Dedup configures the streaming engines' memory of identities.
type Dedup struct {
	// MaxIdentities bounds the identities one partition remembers (within its rules'
	// horizon); beyond, the oldest are forgotten early and counted.
	MaxIdentities int `yaml:"max_identities"`
}

// Topics names the topics the correlator reads and writes (it creates none: vigiectl
// topics apply does).
type Topics struct {
	Enriched string `yaml:"enriched"`
	Alerts   string `yaml:"alerts"`
}

// DefaultGroup is the streaming consumer's group. It stays "correlator" (not
// vigie-correlator): a new group has no committed offsets, so a deployed correlator would
// re-read its whole topic and publish every alert again.
const DefaultGroup = "correlator"

// DefaultConfig suits the local infrastructure of `make up`.
func DefaultConfig() *Config {
	consumer := kafka.DefaultConsumerConfig(DefaultGroup)
	// Alerts are written and offsets committed once per batch: a short wait keeps the
	// event-to-alert latency low.
	consumer.BatchWait = 50 * time.Millisecond
	return &Config{
		Base:       service.DefaultBase("127.0.0.1:19107"),
		Kafka:      kafka.DefaultConfig(),
		Consumer:   consumer,
		Producer:   kafka.DefaultProducerConfig(),
		Topics:     Topics{Enriched: event.TopicEnriched, Alerts: event.TopicAlerts},
		ClickHouse: clickhouse.DefaultConfig(),
		Streaming:  true, Scheduled: true,
		Scheduler:  sched.DefaultConfig(),
		EventClock: clock.DefaultConfig(),
		Dedup:      Dedup{MaxIdentities: stream.DefaultEngineConfig().MaxIdentities},
		State:      stream.DefaultStateConfig(),
	}
}

// Validate names the first bad key.
func (c *Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if !c.Streaming && !c.Scheduled {
		return errors.New("streaming, scheduled: at least one evaluation mode must be on")
	}
	if err := c.Kafka.Validate("kafka"); err != nil {
		return err
	}
	if c.Streaming {
		if err := c.Consumer.Validate("consumer"); err != nil {
			return err
		}
		if c.Topics.Enriched == "" {
			return errors.New("topics.enriched: must not be empty")
		}
	}
	if err := c.Producer.Validate("producer"); err != nil {
		return err
	}
	if c.Topics.Alerts == "" {
		return errors.New("topics.alerts: must not be empty")
	}
	if err := c.ClickHouse.Validate("clickhouse"); err != nil {
		return err
	}
	if err := c.EventClock.Validate("event_clock"); err != nil {
		return err
	}
	if c.Dedup.MaxIdentities < 0 {
		return errors.New("dedup.max_identities: must not be negative")
	}
	if err := c.State.Validate("state"); err != nil {
		return err
	}
	return c.Scheduler.Validate("scheduler")
}

// engine is the streaming engines' configuration.
func (c *Config) engine() stream.EngineConfig {
	return stream.EngineConfig{Clock: c.EventClock, MaxIdentities: c.Dedup.MaxIdentities, State: c.State}
}

// scheduler is the scheduler's configuration, with the event clock.
func (c *Config) scheduler() sched.Config {
	s := c.Scheduler
	s.EventClock = c.EventClock
	return s
}
