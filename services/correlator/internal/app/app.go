package app

import (
	"context"
	"fmt"
	"maps"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/service"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/sched"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Build wires the correlator into s: the rules and reference data (a file that does not
// load stops the start), ClickHouse, the alerts producer, the streaming consumer and the
// scheduler. The parts stop in that order on shutdown (the consumer finishes and commits
// its batches, the scheduler its step); the producer and ClickHouse close after them.
// SIGHUP reloads the rules and the reference data (reload.go).
func Build(ctx context.Context, s *service.Service, cfg *Config) error {
	rs, err := loadRules(cfg.RulesDir)
	if err != nil {
		return err
	}
	ref, err := loadReference(cfg.ReferenceDir)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse, s.Logger)
	if err != nil {
		return err
	}
	s.OnClose(conn.Close)
	s.AddCheck("clickhouse", clickhouse.Ping(conn))
	producer, err := kafka.NewProducer(cfg.Kafka, cfg.Producer, cfg.Topics.Alerts)
	if err != nil {
		return err
	}
	s.OnClose(producer.Close)
	chSink, err := alert.NewClickHouseSink(conn, cfg.ClickHouse.Database)
	if err != nil {
		return err
	}
	// ClickHouse first: the analysts' record; then alerts.v1.
	sink := alert.Sinks{chSink, alert.NewKafkaSink(producer)}

	r := &reloader{cfg: cfg, logger: s.Logger.Named("reload"), streamingRules: streamingDigests(rs)}
	if cfg.Streaming {
		r.consumer, err = stream.NewConsumer(cfg.Kafka, cfg.Consumer, cfg.Topics.Enriched, stream.Deps{
			Rules: rs, Reference: ref, Rebuilder: stream.NewClickHouseRebuilder(conn, cfg.ClickHouse.Database), Sink: sink, Engine: cfg.engine(),
			Metrics: s.Registerer(), Registry: s.Registry,
		}, s.Logger)
		if err != nil {
			return err
		}
		r.streaming = r.consumer
		s.AddCheck("kafka", r.consumer.Ready)
		s.Add("streaming", r.consumer.Run, r.consumer.Stop)
	} else {
		s.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, cfg.Kafka) })
	}
	if cfg.Scheduled {
		r.scheduler = sched.New(cfg.scheduler(), conn, cfg.ClickHouse.Database, rs, sink, s.Logger, s.Registerer())
		r.scheduler.SetReference(ref)
		s.Add("scheduler", r.scheduler.Run, r.scheduler.Stop)
	}
	s.OnReload("rules", r.rules)
	s.OnReload("reference", r.reference)
	s.Logger.Info("rules loaded", zap.Strings("rules", rules.Names(rs)), zap.String("rules_dir", cfg.RulesDir))
	return nil
}

// loadRules loads the rules of dir, or the rules built into the binary when dir is empty.
func loadRules(dir string) ([]*rules.Rule, error) {
	var rs []*rules.Rule
	var err error
	if dir != "" {
		rs, err = rules.LoadDir(dir)
	} else {
		rs, err = rules.LoadDefault()
	}
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	return rs, nil
}

// loadReference loads the reference data of dir, or the data built into the binary.
func loadReference(dir string) (*reference.Snapshot, error) {
	var ref *reference.Snapshot
	var err error
	if dir != "" {
		ref, err = reference.LoadDir(dir)
	} else {
		ref, err = reference.Load(schemaref.FS)
	}
	if err != nil {
		return nil, fmt.Errorf("load reference data: %w", err)
	}
	return ref, nil
}

// streamingDigests identifies the streaming rules by id and content.
func streamingDigests(rs []*rules.Rule) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if r.Mode == rules.Streaming {
			out[r.ID] = r.Digest
		}
	}
	return out
}

// streamingRules is what the reloader needs of the streaming consumer.
type streamingRules interface{ SetRules(rs []*rules.Rule) }

// reloader is what SIGHUP reloads.
type reloader struct {
	cfg       *Config
	logger    *zap.Logger
	consumer  *stream.Consumer // nil when streaming is off
	streaming streamingRules   // the consumer, nil when streaming is off
	scheduler *sched.Scheduler // nil when scheduling is off
	// streamingRules are the streaming rules in force (id -> digest).
	streamingRules map[string]string
}

// rules reloads the rule files. A set that does not load is refused whole (the error, which
// the service logs, names each file and line) and the rules running stay. A good set
// replaces the scheduled rules from the next tick on and, when the streaming rules changed,
// the streaming rules from each partition's next batch on (stream.Consumer.SetRules).
func (r *reloader) rules(context.Context) error {
	rs, err := loadRules(r.cfg.RulesDir)
	if err != nil {
		return err
	}
	if r.streaming != nil {
		if err := r.cfg.State.Check("state", rs); err != nil {
			return err
		}
	}
	if r.scheduler != nil {
		r.scheduler.SetRules(rs)
	}
	if r.streaming != nil {
		if digests := streamingDigests(rs); !maps.Equal(digests, r.streamingRules) {
			r.streaming.SetRules(rs)
			r.streamingRules = digests
			r.logger.Info("streaming rules changed: each partition rebuilds its state with them at its next batch")
		}
	}
	r.logger.Info("rules reloaded", zap.Strings("rules", rules.Names(rs)))
	return nil
}

// reference reloads the reference data (facility coordinates, for events that lack them;
// phone models in scheduled findings' explanations);
// data that does not load is refused and the running data stays.
func (r *reloader) reference(context.Context) error {
	ref, err := loadReference(r.cfg.ReferenceDir)
	if err != nil {
		return err
	}
	if r.consumer != nil {
		r.consumer.SetReference(ref)
	}
	if r.scheduler != nil {
		r.scheduler.SetReference(ref) // phone models in explanations
	}
	return nil
}
