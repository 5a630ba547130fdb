// Package kafka holds what every Vigie service does with Kafka, on segmentio/kafka-go:
//
//   - the connection (config.go): Config, the `kafka:` block of every service (brokers, TLS,
//     SASL), and the kafka-go Dialer and Transport built from it;
//   - the topics (topicspec.go, topics.go): a declarative TopicSpec, loaded strictly from
//     schemas/kafka/topics.yaml by LoadTopicSpecs and applied by ApplyTopics — what
//     `vigiectl topics apply` runs and tests use; services never create topics;
//   - one consumer (consumer*.go): fetch, handle per partition, then commit only what the
//     handler finished;
//   - one producer (producer.go): synchronous, acknowledged by all in-sync replicas unless
//     configured otherwise, murmur2 keys like the Java client;
//   - cluster queries (client.go): Ping for readiness, PartitionOffsets, WaitForTopic.
package kafka
