-- 0008: serial blocks as keyed ids, no serial digit stored (issue #15).
--
-- Until 0007, detections and the block rollups kept the first 3 digits of the IMEI serial
-- (imei_serial_prefix): with the pseudonym key an IMEI was then one of 1,000 HMACs away.
-- Ingest now writes serial_block, the id of the block (the TAC and those 3 digits) keyed
-- with a block key of its own (pkg/pseudonym): equal for the phones of one shipment, as
-- BATCH_RANGE needs, and no digit of the serial.
--
-- The clear digits go: the column is dropped from detections, the block rollups
-- tac_block_per_day and tac_block_national_per_day are dropped, and serial_block_per_day and
-- serial_block_national_per_day take their place (new names: on a cluster a Replicated
-- table's ZooKeeper path is its name, and a path is not taken again at once). Their history cannot be carried over (ids are
-- made from digits ClickHouse no longer holds and with a key it never holds): on a database
-- with history, BATCH_RANGE's blocks look new for the 28 days of its baseline after the
-- migration: keep BATCH_RANGE off (`enabled: false` in its rule file) for the 42 days of
-- history it needs after such an upgrade.

DROP VIEW IF EXISTS {db}.tac_block_per_day_mv;

DROP VIEW IF EXISTS {db}.tac_block_national_per_day_mv;

DROP TABLE IF EXISTS {db}.tac_block_per_day SYNC;

DROP TABLE IF EXISTS {db}.tac_block_national_per_day SYNC;

ALTER TABLE {db}.detections DROP COLUMN IF EXISTS imei_serial_prefix;

ALTER TABLE {db}.detections ADD COLUMN IF NOT EXISTS serial_block String CODEC(ZSTD(1)) AFTER tac;

-- As in 0005: devices per TAC and serial block, per facility, per day.
CREATE TABLE IF NOT EXISTS {db}.serial_block_per_day
(
    tac           LowCardinality(String),
    serial_block  String,
    facility_id   LowCardinality(String),
    day           Date,
    events        SimpleAggregateFunction(sum, UInt64),
    devices       AggregateFunction(uniq, String),
    first_seen    SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen     SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tac, serial_block, facility_id, day)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.serial_block_per_day_mv
TO {db}.serial_block_per_day
AS SELECT
    tac,
    serial_block,
    facility_id,
    toDate(observed_at) AS day,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE tac != '' AND serial_block != ''
GROUP BY tac, serial_block, facility_id, day;

-- As in 0006: the national form, one row per (tac, block, day).
CREATE TABLE IF NOT EXISTS {db}.serial_block_national_per_day
(
    tac           LowCardinality(String),
    serial_block  String,
    day           Date,
    events        SimpleAggregateFunction(sum, UInt64),
    devices       AggregateFunction(uniq, String),
    facility_ids  SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    first_seen    SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen     SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tac, serial_block, day)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.serial_block_national_per_day_mv
TO {db}.serial_block_national_per_day
AS SELECT
    tac,
    serial_block,
    toDate(observed_at) AS day,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices,
    groupUniqArray(toString(facility_id)) AS facility_ids,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE tac != '' AND serial_block != ''
GROUP BY tac, serial_block, day;
