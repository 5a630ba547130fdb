package kafka

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// TopicSpec declares one topic: its partitions, replication and topic-level configuration.
// schemas/kafka/topics.yaml holds Vigie's; tests declare their own.
type TopicSpec struct {
	// Name is the topic's name.
	Name string `yaml:"name"`
	// Partitions is the partition count. Partitions can be added, never removed.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor is the number of replicas of each partition; 0 means min(3, brokers
	// in the cluster), so that one spec fits a single local broker and a production cluster.
	ReplicationFactor int `yaml:"replication_factor"`
	// Config holds topic-level settings such as "retention.ms". When it has no
	// "min.insync.replicas", ApplyTopics sets 2 where the replication factor is 3 or more and
	// 1 otherwise (the factor the topic has, for an existing topic): with acks=all, an
	// acknowledged message is then on two brokers, and one broker may be down without
	// stopping producers.
	Config map[string]string `yaml:"config"`
}

// WithSuffix returns specs with suffix appended to every topic name: a local demo gets topics
// of its own (VIGIE_TOPIC_SUFFIX), the services being configured with the same names.
func WithSuffix(specs []TopicSpec, suffix string) []TopicSpec {
	out := make([]TopicSpec, len(specs))
	for i, s := range specs {
		s.Name += suffix
		out[i] = s
	}
	return out
}

// LoadTopicSpecs reads a topic spec file (a `topics:` list of TopicSpec) and validates it:
// an unknown key, a bad number or an unknown topic setting is an error naming the topic, the
// key and the line.
func LoadTopicSpecs(data []byte) ([]TopicSpec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("topic spec: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("topic spec: empty document")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("topic spec line %d: want a mapping with key topics", root.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "topics" {
			return nil, fmt.Errorf("topic spec line %d: unknown key %q (want topics)", k.Line, k.Value)
		}
		list = v
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, errors.New("topic spec: topics must be a non-empty list")
	}
	var specs []TopicSpec
	seen := map[string]int{}
	for _, n := range list.Content {
		s, err := decodeSpec(n)
		if err != nil {
			return nil, err
		}
		if line, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("topic spec line %d: topic %s already declared on line %d", n.Line, s.Name, line)
		}
		seen[s.Name] = n.Line
		specs = append(specs, s)
	}
	return specs, nil
}

func decodeSpec(n *yaml.Node) (TopicSpec, error) {
	var s TopicSpec
	if n.Kind != yaml.MappingNode {
		return s, fmt.Errorf("topic spec line %d: a topic is a mapping (name, partitions, replication_factor, config)", n.Line)
	}
	// The name first, so that every later error names the topic.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			s.Name = n.Content[i+1].Value
		}
	}
	where := func(line int) string {
		if s.Name == "" {
			return fmt.Sprintf("topic spec line %d: topic without a name", line)
		}
		return fmt.Sprintf("topic spec line %d: topic %s", line, s.Name)
	}
	if s.Name == "" {
		return s, fmt.Errorf("%s: name is required", where(n.Line))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode {
				return s, fmt.Errorf("%s: name: must be a string", where(v.Line))
			}
		case "partitions", "replication_factor":
			x, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				return s, fmt.Errorf("%s: %s: %q is not an integer", where(v.Line), k.Value, v.Value)
			}
			if k.Value == "partitions" {
				s.Partitions = x
			} else {
				s.ReplicationFactor = x
			}
		case "config":
			if v.Kind != yaml.MappingNode {
				return s, fmt.Errorf("%s: config: must be a mapping of topic settings", where(v.Line))
			}
			s.Config = map[string]string{}
			for j := 0; j+1 < len(v.Content); j += 2 {
				ck, cv := v.Content[j], v.Content[j+1]
				if cv.Kind != yaml.ScalarNode {
					return s, fmt.Errorf("%s: config.%s: must be a single value", where(cv.Line), ck.Value)
				}
				if _, dup := s.Config[ck.Value]; dup {
					return s, fmt.Errorf("%s: config.%s: set twice", where(ck.Line), ck.Value)
				}
				s.Config[ck.Value] = cv.Value
				if err := checkTopicSetting(ck.Value, cv.Value); err != nil {
					return s, fmt.Errorf("%s: config.%s: %w", where(cv.Line), ck.Value, err)
				}
			}
		default:
			return s, fmt.Errorf("%s: unknown key %q (want name, partitions, replication_factor, config)", where(k.Line), k.Value)
		}
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", where(n.Line), err)
	}
	return s, nil
}

var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate checks the spec on its own (the cluster's broker count is checked by ApplyTopics).
func (s TopicSpec) Validate() error {
	if !topicName.MatchString(s.Name) || s.Name == "." || s.Name == ".." {
		return fmt.Errorf("name: %q is not a valid topic name ([a-zA-Z0-9._-], at most 249)", s.Name)
	}
	if s.Partitions <= 0 {
		return fmt.Errorf("partitions: must be positive, got %d", s.Partitions)
	}
	if s.ReplicationFactor < 0 {
		return fmt.Errorf("replication_factor: must be 0 (min(3, brokers)) or positive, got %d", s.ReplicationFactor)
	}
	for k, v := range s.Config {
		if err := checkTopicSetting(k, v); err != nil {
			return fmt.Errorf("config.%s: %w", k, err)
		}
	}
	if v, ok := s.Config[minISR]; ok && s.ReplicationFactor > 0 {
		if n, _ := strconv.Atoi(v); n > s.ReplicationFactor {
			return fmt.Errorf("config.%s: %d is more than replication_factor %d: no produce with acks=all would succeed", minISR, n, s.ReplicationFactor)
		}
	}
	return nil
}

const minISR = "min.insync.replicas"

type settingKind int

const (
	kindLong settingKind = iota
	kindBool
	kindRatio
	kindEnum
	kindText
)

// topicSettings are Kafka's topic-level configuration keys; a key not listed is a typo.
var topicSettings = map[string]settingKind{
	"cleanup.policy":                          kindEnum,
	"compression.type":                        kindEnum,
	"compression.gzip.level":                  kindLong,
	"compression.lz4.level":                   kindLong,
	"compression.zstd.level":                  kindLong,
	"delete.retention.ms":                     kindLong,
	"file.delete.delay.ms":                    kindLong,
	"flush.messages":                          kindLong,
	"flush.ms":                                kindLong,
	"follower.replication.throttled.replicas": kindText,
	"index.interval.bytes":                    kindLong,
	"leader.replication.throttled.replicas":   kindText,
	"local.retention.bytes":                   kindLong,
	"local.retention.ms":                      kindLong,
	"max.compaction.lag.ms":                   kindLong,
	"max.message.bytes":                       kindLong,
	"message.timestamp.after.max.ms":          kindLong,
	"message.timestamp.before.max.ms":         kindLong,
	"message.timestamp.type":                  kindEnum,
	"min.cleanable.dirty.ratio":               kindRatio,
	"min.compaction.lag.ms":                   kindLong,
	minISR:                                    kindLong,
	"preallocate":                             kindBool,
	"remote.storage.enable":                   kindBool,
	"retention.bytes":                         kindLong,
	"retention.ms":                            kindLong,
	"segment.bytes":                           kindLong,
	"segment.index.bytes":                     kindLong,
	"segment.jitter.ms":                       kindLong,
	"segment.ms":                              kindLong,
	"unclean.leader.election.enable":          kindBool,
}

var settingValues = map[string][]string{
	"cleanup.policy":         {"delete", "compact", "compact,delete", "delete,compact"},
	"compression.type":       {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"},
	"message.timestamp.type": {"CreateTime", "LogAppendTime"},
}

func checkTopicSetting(key, value string) error {
	kind, ok := topicSettings[key]
	if !ok {
		return errors.New("not a Kafka topic setting")
	}
	switch kind {
	case kindLong:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", value)
		}
		// -1 means unlimited for the retention settings; nothing else is negative.
		if n < -1 || (n == -1 && !strings.Contains(key, "retention")) {
			return fmt.Errorf("%d is negative", n)
		}
		if key == minISR && n < 1 {
			return fmt.Errorf("%d: must be at least 1", n)
		}
	case kindBool:
		if value != "true" && value != "false" {
			return fmt.Errorf("%q is not true or false", value)
		}
	case kindRatio:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("%q is not a number between 0 and 1", value)
		}
	case kindEnum:
		if !slices.Contains(settingValues[key], value) {
			return fmt.Errorf("%q is not one of %s", value, strings.Join(settingValues[key], ", "))
		}
	}
	return nil
}
