-- 0003: correlation findings, written by the correlator (services/correlator).
--
-- One row per version of a finding. A finding keeps its alert_id when a later evaluation
-- extends it (more evidence, a later last_evidence_at); the correlator writes the new state
-- with a higher version and ReplacingMergeTree keeps the latest. Read with FINAL, or
-- argMax(..., version) GROUP BY alert_id. created_at is the time the finding was first
-- raised and never changes, so every version of a finding falls in the same partition (a
-- ReplacingMergeTree replaces only within a partition).
--
-- group_key and evidence_event_ids can name a device pseudonym: the 90-day retention
-- applies, counted from the last update, unless under judicial hold.

CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id            String,
    rule                LowCardinality(String),
    severity            LowCardinality(String),
    group_key           String,
    facilities          Array(LowCardinality(String)),
    first_evidence_at   DateTime64(3, 'UTC'),
    last_evidence_at    DateTime64(3, 'UTC'),
    window_start        DateTime64(3, 'UTC'),
    window_end          DateTime64(3, 'UTC'),
    evidence_event_ids  Array(String)                       CODEC(ZSTD(3)),
    evidence_count      UInt32,
    explanation         String                              CODEC(ZSTD(3)),
    created_at          DateTime64(3, 'UTC'),
    updated_at          DateTime64(3, 'UTC'),
    version             UInt64,
    judicial_hold       Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (rule, alert_id)
TTL toDateTime(updated_at) + INTERVAL 90 DAY DELETE WHERE NOT judicial_hold
SETTINGS non_replicated_deduplication_window = 10000;
