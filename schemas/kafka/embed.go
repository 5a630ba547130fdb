// Package kafka embeds Vigie's declarative Kafka topic spec, topics.yaml: each topic's
// partitions, replication factor and topic-level settings. `vigiectl topics apply` applies
// it (pkg/kafka.LoadTopicSpecs and ApplyTopics); services never create topics.
package kafka

import "embed"

// SpecFile is the name of the topic spec inside FS.
const SpecFile = "topics.yaml"

// FS holds topics.yaml.
//
//go:embed topics.yaml
var FS embed.FS

// Spec is the content of topics.yaml.
//
//go:embed topics.yaml
var Spec []byte
