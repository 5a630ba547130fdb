-- 0005: what the correlator (services/correlator) needs beyond 0003_alerts.
--
-- correlator_watermarks: per scheduled rule, the end of the last event-time window it
-- evaluated. A rule evaluates each window once, in order; after a restart it resumes after
-- the highest window_end stored here (read with max(window_end) ... GROUP BY rule).
--
-- tac_block_per_day: devices per TAC, serial block (first 3 serial digits) and facility per
-- day, for BATCH_RANGE over 60 days without scanning the raw detections. Like every view
-- added after data exists, it sees only rows inserted after it was created (no backfill).
-- The uniq state holds hashes of device pseudonyms: same retention as the raw table.

CREATE TABLE IF NOT EXISTS {db}.correlator_watermarks
(
    rule          LowCardinality(String),
    window_end    DateTime64(3, 'UTC'),
    evaluated_at  DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    alerts        UInt32
)
ENGINE = ReplacingMergeTree(window_end)
ORDER BY rule;

CREATE TABLE IF NOT EXISTS {db}.tac_block_per_day
(
    tac                 LowCardinality(String),
    imei_serial_prefix  LowCardinality(String),
    facility_id         LowCardinality(String),
    day                 Date,
    events              SimpleAggregateFunction(sum, UInt64),
    devices             AggregateFunction(uniq, String),
    first_seen          SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen           SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tac, imei_serial_prefix, facility_id, day)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tac_block_per_day_mv
TO {db}.tac_block_per_day
AS SELECT
    tac,
    imei_serial_prefix,
    facility_id,
    toDate(observed_at) AS day,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE tac != '' AND imei_serial_prefix != ''
GROUP BY tac, imei_serial_prefix, facility_id, day;
