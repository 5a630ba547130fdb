-- 0002: rollups fed by materialized views, and the writer's offset record.
--
-- Dashboards and long-window correlation rules read these instead of the raw table. Each view
-- target has its own deduplication window: the writer inserts with an
-- insert_deduplication_token and deduplicate_blocks_in_dependent_materialized_views = 1, and
-- a block that detections drops as a duplicate must be dropped by every target too, or the
-- rollups count it twice (measured on ClickHouse 26.5: without a window on the target the
-- view's block is inserted again). Targets are AggregatingMergeTree: read them with
-- sum(events), uniqMerge(devices), min(first_seen), max(last_seen) and GROUP BY, never raw.
--
-- "devices" counts phones by pseudonym (device_id: the IMEI pseudonym, else the IMSI
-- pseudonym); events without a phone identity (RF bursts, drones, jammers) count in events
-- but not in devices.

-- Per facility, per minute, per kind: the dashboards' activity panels and SYNC_BURST.
CREATE TABLE IF NOT EXISTS {db}.detections_per_minute
(
    facility_id  LowCardinality(String),
    minute       DateTime('UTC')                            CODEC(Delta, ZSTD(1)),
    kind         LowCardinality(String),
    events       SimpleAggregateFunction(sum, UInt64),
    devices      AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (facility_id, minute, kind)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.detections_per_minute_mv
TO {db}.detections_per_minute
AS SELECT
    facility_id,
    toStartOfMinute(observed_at) AS minute,
    kind,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices
FROM {db}.detections
GROUP BY facility_id, minute, kind;

-- Per TAC (phone model), per facility, per day: TAC_SPREAD, NEW_TAC_NATIONAL, model panels.
-- No personal data (a TAC is a model), so no 90-day TTL: NEW_TAC_NATIONAL needs 180 days.
CREATE TABLE IF NOT EXISTS {db}.tac_per_day
(
    tac          LowCardinality(String),
    facility_id  LowCardinality(String),
    day          Date,
    events       SimpleAggregateFunction(sum, UInt64),
    devices      AggregateFunction(uniq, String),
    first_seen   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen    SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tac, facility_id, day)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tac_per_day_mv
TO {db}.tac_per_day
AS SELECT
    tac,
    facility_id,
    toDate(observed_at) AS day,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE tac != ''
GROUP BY tac, facility_id, day;

-- Device presence per facility per day: DEVICE_MULTI_SITE, DRONE_THEN_NEW_DEVICE (new to a
-- facility over 30 days), SEIZED_RESURRECTION. Holds pseudonyms, so the same retention as
-- the raw table: 90 days unless under judicial hold (the hold is part of the key so that held
-- and unheld rows never merge into one).
CREATE TABLE IF NOT EXISTS {db}.device_presence_per_day
(
    facility_id    LowCardinality(String),
    day            Date,
    device_id      String                                   CODEC(ZSTD(1)),
    judicial_hold  Bool,
    tac            SimpleAggregateFunction(any, LowCardinality(String)),
    events         SimpleAggregateFunction(sum, UInt64),
    first_seen     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen      SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (facility_id, day, device_id, judicial_hold)
TTL day + INTERVAL 90 DAY DELETE WHERE NOT judicial_hold
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.device_presence_per_day_mv
TO {db}.device_presence_per_day
AS SELECT
    facility_id,
    toDate(observed_at) AS day,
    device_id,
    judicial_hold,
    any(tac) AS tac,
    count() AS events,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE device_id != ''
GROUP BY facility_id, day, device_id, judicial_hold;

-- The highest Kafka offset written per topic and partition, so that a restarted writer can
-- resume after what ClickHouse already holds without scanning detections. rows counts the
-- rows written per partition (a cheap consistency check against count() of detections).
CREATE TABLE IF NOT EXISTS {db}.writer_offsets
(
    kafka_topic      LowCardinality(String),
    kafka_partition  UInt16,
    max_offset       SimpleAggregateFunction(max, Int64),
    rows             SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (kafka_topic, kafka_partition)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.writer_offsets_mv
TO {db}.writer_offsets
AS SELECT
    kafka_topic,
    kafka_partition,
    max(kafka_offset) AS max_offset,
    count() AS rows
FROM {db}.detections
GROUP BY kafka_topic, kafka_partition;
