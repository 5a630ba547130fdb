package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// What a TopicChange is about. A change whose What starts with DriftPrefix is one that
// ApplyTopics cannot make: someone must decide (e.g. recreate the topic, reassign replicas).
const (
	ChangeCreate     = "create"
	ChangePartitions = "partitions"
	// ChangeConfigPrefix is followed by the config key, e.g. "config retention.ms".
	ChangeConfigPrefix = "config "

	DriftPrefix = "drift "
	// DriftReplicationFactor: the topic's replication factor differs from the spec's
	// (changing it needs a partition reassignment).
	DriftReplicationFactor = DriftPrefix + "replication_factor"
	// DriftPartitions: the topic has more partitions than the spec asks (Kafka cannot
	// remove partitions).
	DriftPartitions = DriftPrefix + "partitions"
)

// TopicChange is one difference between a spec and the cluster: what ApplyTopics changed
// (Applied), would change (dry run) or cannot change (Drift).
type TopicChange struct {
	Topic   string
	What    string
	From    string
	To      string
	Applied bool
}

// Drift reports whether the change is one ApplyTopics cannot make.
func (c TopicChange) Drift() bool { return strings.HasPrefix(c.What, DriftPrefix) }

// String is the change on one line, e.g. "alerts.v1: config retention.ms 604800000 -> 2592000000 (applied)".
func (c TopicChange) String() string {
	state := "planned"
	switch {
	case c.Drift():
		state = "not fixable"
	case c.Applied:
		state = "applied"
	}
	from := c.From
	if from == "" {
		from = "-"
	}
	return fmt.Sprintf("%s: %s %s -> %s (%s)", c.Topic, c.What, from, c.To, state)
}

// ApplyOption changes how ApplyTopics works.
type ApplyOption func(*applyOptions)

type applyOptions struct {
	dryRun      bool
	readyWithin time.Duration
}

// DryRun makes ApplyTopics report what it would change without changing anything.
func DryRun() ApplyOption { return func(o *applyOptions) { o.dryRun = true } }

// effective is a spec resolved against the cluster: its replication factor and settings.
type effective struct {
	TopicSpec
	config map[string]string
	// explicitISR: the spec sets min.insync.replicas itself.
	explicitISR bool
}

func resolve(s TopicSpec, brokers int) effective {
	e := effective{TopicSpec: s, config: map[string]string{}}
	if e.ReplicationFactor == 0 {
		e.ReplicationFactor = min(3, brokers)
	}
	for k, v := range s.Config {
		e.config[k] = v
	}
	_, e.explicitISR = e.config[minISR]
	if !e.explicitISR {
		e.config[minISR] = strconv.Itoa(defaultMinISR(e.ReplicationFactor))
	}
	return e
}

// defaultMinISR is 2 where the replication factor is 3 or more (one broker may fail without
// stopping acks=all producers or losing an acknowledged message) and 1 below, where 2 would
// stop every producer as soon as one replica is down.
func defaultMinISR(rf int) int {
	if rf >= 3 {
		return 2
	}
	return 1
}

// ApplyTopics makes the cluster match specs: it creates the topics that are missing, adds
// partitions where the spec asks for more, and sets the topic settings that differ (settings
// the spec does not name are left as they are). It reports every change, and every
// difference it cannot fix (a different replication factor, more partitions than the spec
// asks) as a drift change; with DryRun it reports without changing anything. It is
// idempotent: a second call reports nothing. Unless in a dry run, it returns once every
// partition of every topic has a leader, so that producing right after succeeds.
func ApplyTopics(ctx context.Context, conn Config, specs []TopicSpec, logger *zap.Logger, opts ...ApplyOption) ([]TopicChange, error) {
	o := applyOptions{readyWithin: time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	if len(specs) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(specs))
	want := map[string]int{} // partitions each topic has once applied
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("topic %s: %w", s.Name, err)
		}
		if _, dup := want[s.Name]; dup {
			return nil, fmt.Errorf("topic %s: declared twice", s.Name)
		}
		names = append(names, s.Name)
		want[s.Name] = s.Partitions
	}
	cl, err := newClient(conn, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.close()

	meta, err := metadata(ctx, conn, names)
	if err != nil {
		return nil, fmt.Errorf("apply topics: %w", err)
	}
	existing := map[string]kafkago.Topic{}
	for _, t := range meta.Topics {
		switch {
		case t.Error == nil:
			existing[t.Name] = t
		case errors.Is(t.Error, kafkago.UnknownTopicOrPartition):
		default:
			return nil, fmt.Errorf("apply topics: metadata of %s: %w", t.Name, t.Error)
		}
	}
	brokers := len(meta.Brokers)

	var (
		changes []TopicChange
		create  []effective
		present []effective
	)
	for _, s := range specs {
		e := resolve(s, brokers)
		if e.ReplicationFactor > brokers {
			return nil, fmt.Errorf("topic %s: replication factor %d needs %d brokers, the cluster has %d", e.Name, e.ReplicationFactor, e.ReplicationFactor, brokers)
		}
		if n, _ := strconv.Atoi(e.config[minISR]); n > e.ReplicationFactor {
			return nil, fmt.Errorf("topic %s: %s %d is more than the replication factor %d", e.Name, minISR, n, e.ReplicationFactor)
		}
		if _, ok := existing[e.Name]; ok {
			present = append(present, e)
		} else {
			create = append(create, e)
		}
	}

	created := create[:0]
	for _, e := range create {
		ch := TopicChange{Topic: e.Name, What: ChangeCreate,
			To: fmt.Sprintf("partitions=%d replication_factor=%d %s", e.Partitions, e.ReplicationFactor, formatConfig(e.config))}
		if !o.dryRun {
			err := createTopic(ctx, cl.Client, e)
			if errors.Is(err, kafkago.TopicAlreadyExists) {
				// It was there after all: compare it with the spec like any other.
				showCtx, cancel := context.WithTimeout(ctx, o.readyWithin)
				t, err := existingTopic(showCtx, conn, e.Name)
				cancel()
				if err != nil {
					return changes, fmt.Errorf("apply topics: %w", err)
				}
				existing[e.Name] = t
				present = append(present, e)
				continue
			}
			if err != nil {
				return changes, err
			}
			ch.Applied = true
		}
		created = append(created, e)
		changes = append(changes, ch)
	}
	create = created

	for _, e := range present {
		t := existing[e.Name]
		got := len(t.Partitions)
		rf := replicationFactor(t)
		if !e.explicitISR {
			// From the factor the topic has: 2 on a topic left at factor 1 would stop
			// every acks=all producer.
			e.config[minISR] = strconv.Itoa(defaultMinISR(rf))
		}
		if rf != e.ReplicationFactor {
			changes = append(changes, TopicChange{Topic: e.Name, What: DriftReplicationFactor,
				From: strconv.Itoa(rf), To: strconv.Itoa(e.ReplicationFactor)})
		}
		switch {
		case got < e.Partitions:
			ch := TopicChange{Topic: e.Name, What: ChangePartitions, From: strconv.Itoa(got), To: strconv.Itoa(e.Partitions)}
			if !o.dryRun {
				if err := addPartitions(ctx, cl.Client, e.Name, e.Partitions); err != nil {
					return changes, err
				}
				ch.Applied = true
			}
			changes = append(changes, ch)
		case got > e.Partitions:
			want[e.Name] = got
			changes = append(changes, TopicChange{Topic: e.Name, What: DriftPartitions,
				From: strconv.Itoa(got), To: strconv.Itoa(e.Partitions)})
		}
		cfgChanges, err := alignConfig(ctx, cl.Client, e, o.dryRun)
		changes = append(changes, cfgChanges...)
		if err != nil {
			return changes, err
		}
	}

	for _, ch := range changes {
		fields := []zap.Field{zap.String("topic", ch.Topic), zap.String("what", ch.What),
			zap.String("from", ch.From), zap.String("to", ch.To), zap.Bool("applied", ch.Applied)}
		if ch.Drift() {
			logger.Warn("topic drift", fields...)
		} else {
			logger.Info("topic change", fields...)
		}
	}
	if o.dryRun {
		return changes, nil
	}
	readyCtx, cancel := context.WithTimeout(ctx, o.readyWithin)
	defer cancel()
	if err := waitReady(readyCtx, conn, want); err != nil {
		return changes, fmt.Errorf("apply topics: %w", err)
	}
	// A broker learns of new settings a moment after the controller: wait until they show,
	// so that the next apply (or a test) sees what this one did.
	var changed []effective
	for _, e := range append(create, present...) {
		for _, ch := range changes {
			if ch.Topic == e.Name && ch.Applied {
				changed = append(changed, e)
				break
			}
		}
	}
	if err := waitSettings(readyCtx, cl.Client, changed); err != nil {
		return changes, fmt.Errorf("apply topics: %w", err)
	}
	return changes, nil
}
