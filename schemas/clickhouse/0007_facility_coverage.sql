-- 0007: facility_coverage, since when each facility's feed exists.
--
-- Per facility, the first and the last event time stored: the correlator's scheduled rules
-- make no claim that needs more history than the data holds ("unseen for 180 days" needs
-- 180 days of the facility's data; "above its 28-day baseline" needs 28 days). A facility
-- is covered for a need H at time t when its first_seen <= t - H (services/correlator
-- README, "No claim without history"). Read with min(first_seen), max(last_seen) and
-- GROUP BY facility_id (rows merge in the background).
--
-- Only event times within ingest's bounds count (observed_at at most 5 minutes after its
-- receipt and at most 90 days before it, pkg/event's ClockSkew and Retention): a row whose
-- time is out of them (a hostile or broken sensor clock) must not make a facility look
-- covered since 1900. min and max are idempotent, so a block inserted twice changes
-- nothing; the deduplication window is kept as on every rollup.
--
-- No personal data (a facility id and two times): no TTL, the coverage outlives the raw
-- detections' 90 days.
--
-- A view sees only rows inserted after it was created (no backfill). On a database that
-- already holds data, fill it once from the per-minute rollup, which has no TTL (any time,
-- any number of times: min and max do not change when rows are inserted again):
--   INSERT INTO facility_coverage
--   SELECT facility_id, min(minute), max(minute) + INTERVAL 59 SECOND
--   FROM detections_per_minute GROUP BY facility_id;
-- Until then every facility counts as covered from the migration on: rules that need
-- history warm up again (no false claim, only a delay).

CREATE TABLE IF NOT EXISTS {db}.facility_coverage
(
    facility_id  LowCardinality(String),
    first_seen   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen    SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY facility_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.facility_coverage_mv
TO {db}.facility_coverage
AS SELECT
    facility_id,
    min(observed_at) AS first_seen,
    max(observed_at) AS last_seen
FROM {db}.detections
WHERE facility_id != ''
  AND observed_at <= received_at + INTERVAL 5 MINUTE
  AND observed_at >= received_at - INTERVAL 90 DAY
GROUP BY facility_id;
