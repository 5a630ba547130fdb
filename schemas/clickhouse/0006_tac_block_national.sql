-- 0006: tac_block_national_per_day, the national form of tac_block_per_day (0005).
--
-- Devices per TAC and serial block (first 3 serial digits) per day across all facilities,
-- with the facilities themselves as an aggregate (the set of facility ids, merged by
-- groupUniqArrayArray): BATCH_RANGE counts devices and facilities of a block over 60 days
-- by merging one row per (tac, block, day) instead of one per (tac, block, facility, day),
-- i.e. as many times fewer rows as facilities report the block on a day, and still lists
-- which facilities (exactly) for the alert. Read with uniqMerge(devices) and
-- groupUniqArrayArray(facility_ids). A plain array merged as a SimpleAggregateFunction
-- reads faster than an AggregateFunction(groupUniqArray) state (measured on chDB 26.5:
-- 0.24 s instead of 0.38 s for 60 days x 600 blocks x 190 facilities).
--
-- Fed from detections like the other rollups, so the writer's insert (its
-- insert_deduplication_token, deduplicate_blocks_in_dependent_materialized_views = 1)
-- deduplicates it too: hence its own non_replicated_deduplication_window.
--
-- A view sees only rows inserted after it was created (no backfill). On a database that
-- already holds detections, stop the writer, apply this migration, then fill the table once
-- from tac_block_per_day (the same rows, one level up), and restart the writer:
--   INSERT INTO tac_block_national_per_day
--   SELECT tac, imei_serial_prefix, day, sum(events), uniqMergeState(devices),
--          groupUniqArray(toString(facility_id)), min(first_seen), max(last_seen)
--   FROM tac_block_per_day GROUP BY tac, imei_serial_prefix, day;
-- The uniq state holds hashes of device pseudonyms: same retention as tac_block_per_day.

CREATE TABLE IF NOT EXISTS {db}.tac_block_national_per_day
(
    tac                 LowCardinality(String),
    imei_serial_prefix  LowCardinality(String),
    day                 Date,
    events              SimpleAggregateFunction(sum, UInt64),
    devices             AggregateFunction(uniq, String),
    facility_ids        SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    first_seen          SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen           SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tac, imei_serial_prefix, day)
TTL day + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tac_block_national_per_day_mv
TO {db}.tac_block_national_per_day
AS SELECT
    tac,
    imei_serial_prefix,
    toDate(observed_at) AS day,
    count() AS events,
    uniqStateIf(device_id, device_id != '') AS devices,
    groupUniqArray(toString(facility_id)) AS facility_ids,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE tac != '' AND imei_serial_prefix != ''
GROUP BY tac, imei_serial_prefix, day;
