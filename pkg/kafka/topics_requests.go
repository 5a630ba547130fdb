package kafka

// The admin requests behind ApplyTopics: create, add partitions, align configs, and the waits
// until the brokers show what was asked.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigie/vigie/pkg/retry"
)

// waitSettings polls until every topic of topics shows the settings of its spec.
func waitSettings(ctx context.Context, cl *kafkago.Client, topics []effective) error {
	p := settle
	p.MaxElapsed = 0 // the caller's ctx bounds it
	for _, e := range topics {
		err := retry.Do(ctx, p, func(ctx context.Context) error {
			pending, err := alignConfig(ctx, cl, e, true)
			if err != nil {
				return err
			}
			if len(pending) > 0 {
				return fmt.Errorf("topic %s: %s not visible yet", e.Name, pending[0].What)
			}
			return nil
		}, nil)
		if err != nil {
			return fmt.Errorf("settings not applied: %w", err)
		}
	}
	return nil
}

// createTopic creates e; it returns kafkago.TopicAlreadyExists, unwrapped, when the topic
// exists after all: another apply made it in between, or the broker the metadata came from
// had not yet heard of a topic the controller knows (a cluster's brokers learn of a new topic
// one after the other).
func createTopic(ctx context.Context, cl *kafkago.Client, e effective) error {
	tc := kafkago.TopicConfig{Topic: e.Name, NumPartitions: e.Partitions, ReplicationFactor: e.ReplicationFactor}
	for _, k := range sortedKeys(e.config) {
		tc.ConfigEntries = append(tc.ConfigEntries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: e.config[k]})
	}
	resp, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{tc}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", e.Name, err)
	}
	switch err := resp.Errors[e.Name]; {
	case err == nil:
		return nil
	case errors.Is(err, kafkago.TopicAlreadyExists):
		return kafkago.TopicAlreadyExists
	default:
		return fmt.Errorf("create topic %s: %w", e.Name, err)
	}
}

// existingTopic polls the metadata of a topic the controller says exists until a broker
// shows it.
func existingTopic(ctx context.Context, conn Config, name string) (kafkago.Topic, error) {
	p := settle
	p.MaxElapsed = 0 // the caller's ctx bounds it
	var topic kafkago.Topic
	err := retry.Do(ctx, p, func(ctx context.Context) error {
		meta, err := metadata(ctx, conn, []string{name})
		if err != nil {
			return err
		}
		for _, t := range meta.Topics {
			if t.Name == name && t.Error == nil && len(t.Partitions) > 0 {
				topic = t
				return nil
			}
		}
		return fmt.Errorf("topic %s exists but no broker shows it yet", name)
	}, nil)
	return topic, err
}

func addPartitions(ctx context.Context, cl *kafkago.Client, topic string, count int) error {
	resp, err := cl.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{
		Topics: []kafkago.TopicPartitionsConfig{{Name: topic, Count: int32(count)}},
	})
	if err != nil {
		return fmt.Errorf("add partitions to %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil {
		return fmt.Errorf("add partitions to %s: %w", topic, err)
	}
	return nil
}

// alignConfig compares the topic's settings named by the spec with the cluster's and sets
// those that differ (unless dryRun).
func alignConfig(ctx context.Context, cl *kafkago.Client, e effective, dryRun bool) ([]TopicChange, error) {
	keys := sortedKeys(e.config)
	resp, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{
		Resources: []kafkago.DescribeConfigRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: e.Name, ConfigNames: keys,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("describe configs of %s: %w", e.Name, err)
	}
	current := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", e.Name, r.Error)
		}
		for _, c := range r.ConfigEntries {
			current[c.ConfigName] = c.ConfigValue
		}
	}
	var (
		changes []TopicChange
		set     []kafkago.IncrementalAlterConfigsRequestConfig
	)
	for _, k := range keys {
		want := e.config[k]
		if have, ok := current[k]; ok && have == want {
			continue
		}
		changes = append(changes, TopicChange{Topic: e.Name, What: ChangeConfigPrefix + k, From: current[k], To: want})
		set = append(set, kafkago.IncrementalAlterConfigsRequestConfig{Name: k, Value: want, ConfigOperation: kafkago.ConfigOperationSet})
	}
	if dryRun || len(set) == 0 {
		return changes, nil
	}
	ar, err := cl.IncrementalAlterConfigs(ctx, &kafkago.IncrementalAlterConfigsRequest{
		Resources: []kafkago.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: e.Name, Configs: set,
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("alter configs of %s: %w", e.Name, err)
	}
	for _, r := range ar.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("alter configs of %s: %w", e.Name, r.Error)
		}
	}
	for i := range changes {
		changes[i].Applied = true
	}
	return changes, nil
}

// replicationFactor is the largest replica count of the topic's partitions (a partition
// being reassigned may briefly have more).
func replicationFactor(t kafkago.Topic) int {
	rf := 0
	for _, p := range t.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return rf
}

// waitReady polls until every topic of want has its partitions, each with a leader, or ctx
// ends.
func waitReady(ctx context.Context, conn Config, want map[string]int) error {
	p := settle
	p.MaxElapsed = 0 // the caller's ctx bounds it
	if err := retry.Do(ctx, p, func(ctx context.Context) error { return topicsReady(ctx, conn, want) }, nil); err != nil {
		return fmt.Errorf("topics not ready: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func formatConfig(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}
