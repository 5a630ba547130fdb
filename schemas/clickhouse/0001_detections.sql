-- 0001: the raw detections table.
--
-- One row per enriched event, written by the writer service (services/writer) from
-- detections.enriched.v1. {db} is replaced by the migrate command with the target database,
-- quoted. Every statement is idempotent (IF NOT EXISTS) so that a migration interrupted half
-- way, or run by two processes at once, converges to the same schema.

CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.detections
(
    -- Identity and time.
    event_id            String                      CODEC(ZSTD(1)),
    sensor_id           LowCardinality(String),
    kind                LowCardinality(String),
    observed_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    ingested_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    enriched_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC') CODEC(Delta, ZSTD(1)),

    -- Where (from the enricher's reference data).
    facility_id         LowCardinality(String),
    facility_name       LowCardinality(String),
    facility_type       LowCardinality(String),
    region              LowCardinality(String),
    department          LowCardinality(String),
    zone                LowCardinality(String),
    zone_type           LowCardinality(String),
    cell                LowCardinality(String),

    -- Radio.
    rat                 LowCardinality(String),
    band                LowCardinality(String),
    freq_mhz            Nullable(Float32)           CODEC(ZSTD(1)),
    rssi_dbm            Nullable(Float32)           CODEC(ZSTD(1)),
    outcome             LowCardinality(String),
    duration_ms         Nullable(UInt32)            CODEC(ZSTD(1)),
    data_bytes          Nullable(UInt64)            CODEC(ZSTD(1)),
    bandwidth_khz       Nullable(Float32)           CODEC(ZSTD(1)),

    -- Device: pseudonyms only (HMAC-SHA256, see key_version), never a clear identifier.
    device_id           String                      CODEC(ZSTD(1)),
    imei_pseudo         String                      CODEC(ZSTD(1)),
    imsi_pseudo         String                      CODEC(ZSTD(1)),
    msisdn_pseudo       String                      CODEC(ZSTD(1)),
    key_version         LowCardinality(String),
    tac                 LowCardinality(String),
    manufacturer        LowCardinality(String),
    model               LowCardinality(String),
    mini_phone          Bool,
    mcc                 LowCardinality(String),
    mnc                 LowCardinality(String),
    operator            LowCardinality(String),
    country             LowCardinality(String),

    -- Drone sightings (drone_seen).
    drone_source        LowCardinality(String),
    drone_lat           Nullable(Float64)           CODEC(ZSTD(1)),
    drone_lon           Nullable(Float64)           CODEC(ZSTD(1)),
    drone_alt_m         Nullable(Float32)           CODEC(ZSTD(1)),
    drone_height_m      Nullable(Float32)           CODEC(ZSTD(1)),
    drone_speed_mps     Nullable(Float32)           CODEC(ZSTD(1)),
    drone_heading_deg   Nullable(Float32)           CODEC(ZSTD(1)),
    drone_uas_id        String                      CODEC(ZSTD(1)),
    drone_ua_type       LowCardinality(String),
    drone_operator_id   String                      CODEC(ZSTD(1)),
    drone_operator_lat  Nullable(Float64)           CODEC(ZSTD(1)),
    drone_operator_lon  Nullable(Float64)           CODEC(ZSTD(1)),

    -- Jammer alarms (jammer_alarm).
    jammer_id           LowCardinality(String),
    jammer_alarm        LowCardinality(String),
    jammer_severity     LowCardinality(String),

    -- Seizures (item_seized).
    seized_phones       UInt16,
    seized_mini_phones  UInt16,
    seized_sims         UInt16,
    seized_accessories  UInt16,
    search_id           LowCardinality(String),
    found_by            LowCardinality(String),

    -- Retention: a judicial procedure suspends the 90-day clock (code pénitentiaire L223-4).
    judicial_hold       Bool,

    -- Where the row came from: the writer resumes after the highest offset stored here.
    kafka_topic         LowCardinality(String),
    kafka_partition     UInt16,
    kafka_offset        Int64                       CODEC(Delta, ZSTD(1)),

    INDEX idx_device device_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_event event_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(observed_at)
ORDER BY (facility_id, observed_at, kind)
TTL toDateTime(observed_at) + INTERVAL 90 DAY DELETE WHERE NOT judicial_hold
SETTINGS non_replicated_deduplication_window = 10000;
