package clickhouse

// Everywhere is the placement of a table replicated on every server of the cluster (the
// same value as pkg/chmigrate.Everywhere).
const Everywhere = "*"

// ClusterTables says where each table of the migrations goes on a cluster: the sharding key
// of its Distributed table, "" for a table that only materialized views write, or
// Everywhere. `vigiectl migrate -clickhouse.cluster NAME` derives the cluster variant of
// the migrations from the same files with it (pkg/chmigrate.ForCluster); a migration that
// creates a table must add the table here. docs/clickhouse-cluster.md explains the choices:
//
//   - detections is sharded by kafka_partition: every row of a Kafka partition lands on one
//     shard, so each partition's rows of one insert are one sub-block, stored whole or not
//     at all. detections.enriched.v1 is keyed by device, so the copies of an event and a
//     device's rows are on one shard too, as long as the topic keeps its partition count
//     and the cluster its shards. The writer's correctness does not rest on the key: its
//     identity check reads every replica of every shard (clusterAllReplicas), wherever a
//     row went; the key dates from when the writer resumed a partition after its highest
//     stored offset, which needed a partition on one shard.
//   - rollups and writer_offsets are fed by views on each shard's detections_local: their
//     Distributed tables are for reading (rows of one key on two shards merge at query time,
//     which the rollups' readers do anyway with GROUP BY).
//   - alerts (ReplacingMergeTree) keeps every version of an alert on one shard
//     (cityHash64(alert_id)), so FINAL and argMax per alert_id see them all;
//     correlator_watermarks likewise per rule.
//   - reference tables are small and joined with detections: a full copy on every server.
var ClusterTables = map[string]string{
	"detections":                    "kafka_partition",
	"detections_per_minute":         "",
	"tac_per_day":                   "",
	"device_presence_per_day":       "",
	"writer_offsets":                "",
	"tac_block_per_day":             "", // dropped by 0008
	"tac_block_national_per_day":    "", // dropped by 0008
	"serial_block_per_day":          "",
	"serial_block_national_per_day": "",
	"facility_coverage":             "",
	"alerts":                        "cityHash64(alert_id)",
	"correlator_watermarks":         "cityHash64(rule)",
	"facilities":                    Everywhere,
	"sensors":                       Everywhere,
	"tac_models":                    Everywhere,
	"operators":                     Everywhere,
}
