-- 0001: the raw detections table.
--
-- One row per enriched event, written by the writer service (services/writer) from
-- detections.enriched.v1. {db} is replaced by the migrate command with the target database,
-- quoted. Every statement is idempotent (IF NOT EXISTS) so that a migration interrupted half
-- way, or run by two processes at once, converges to the same schema.

CREATE DATABASE IF NOT EXISTS {db};

-- Column types, measured (schemas/clickhouse/README.md): LowCardinality only on the columns
-- that queries group and filter by (sensor_id, kind, facility_id, tac); every other string
-- is String with ZSTD(1), which stores repeated values as compactly (within 20%) and costs
-- the writer about 115 ns less per column and row (clickhouse-go appends LowCardinality
-- values one by one through reflection). Timestamps use Delta + ZSTD(1) (5x smaller than
-- LZ4); floats and pseudonyms ZSTD(1) (2.5x and 2x smaller than LZ4).
CREATE TABLE IF NOT EXISTS {db}.detections
(
    -- Identity and time (pkg/event Common, Raw, Enrichment).
    event_id            String                      CODEC(ZSTD(1)),
    sensor_id           LowCardinality(String),
    kind                LowCardinality(String),
    observed_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    received_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    enriched_at         DateTime64(3, 'UTC')        CODEC(Delta, ZSTD(1)),
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC') CODEC(Delta, ZSTD(1)),

    -- Where: the sensor's report and the enricher's reference data.
    zone                String                      CODEC(ZSTD(1)),
    cell                String                      CODEC(ZSTD(1)),
    facility_id         LowCardinality(String),
    facility_name       String                      CODEC(ZSTD(1)),
    facility_type       String                      CODEC(ZSTD(1)),
    disp                String                      CODEC(ZSTD(1)),
    region_code         String                      CODEC(ZSTD(1)),
    department_code     String                      CODEC(ZSTD(1)),
    department_name     String                      CODEC(ZSTD(1)),
    facility_lat        Nullable(Float64)           CODEC(ZSTD(1)),
    facility_lon        Nullable(Float64)           CODEC(ZSTD(1)),
    building            String                      CODEC(ZSTD(1)),
    zone_type           String                      CODEC(ZSTD(1)),
    sensor_type         String                      CODEC(ZSTD(1)),
    vendor              String                      CODEC(ZSTD(1)),

    -- Radio attempts and RF bursts.
    rat                 String                      CODEC(ZSTD(1)),
    band                String                      CODEC(ZSTD(1)),
    freq_mhz            Nullable(Float64)           CODEC(ZSTD(1)),
    rssi_dbm            Nullable(Float64)           CODEC(ZSTD(1)),
    outcome             String                      CODEC(ZSTD(1)),
    duration_ms         Nullable(UInt32)            CODEC(ZSTD(1)),
    data_bytes          Nullable(UInt64)            CODEC(ZSTD(1)),
    bandwidth_khz       Nullable(Float64)           CODEC(ZSTD(1)),

    -- The phone: pseudonyms only (HMAC-SHA256 under key_version), never a clear identifier.
    key_version         String                      CODEC(ZSTD(1)),
    imei_pseudo         String                      CODEC(ZSTD(1)),
    imsi_pseudo         String                      CODEC(ZSTD(1)),
    msisdn_pseudo       String                      CODEC(ZSTD(1)),
    tac                 LowCardinality(String),
    imei_serial_prefix  String                      CODEC(ZSTD(1)),
    imei_check_ok       Nullable(Bool),
    mcc                 String                      CODEC(ZSTD(1)),
    mnc                 String                      CODEC(ZSTD(1)),
    manufacturer        String                      CODEC(ZSTD(1)),
    model               String                      CODEC(ZSTD(1)),
    mini_phone          Nullable(Bool),
    operator            String                      CODEC(ZSTD(1)),
    brand               String                      CODEC(ZSTD(1)),
    country             String                      CODEC(ZSTD(1)),
    -- The phone's identity for counting devices: IMEI pseudonym, else IMSI pseudonym, else ''.
    device_id           String ALIAS if(imei_pseudo != '', imei_pseudo, imsi_pseudo),
    -- The Kafka key of detections.enriched.v1 (pkg/event Raw.DeviceKey).
    device_key          String ALIAS multiIf(imei_pseudo != '', imei_pseudo, imsi_pseudo != '', imsi_pseudo, concat('sensor:', sensor_id)),

    -- Drone sightings (drone_seen), with ASTM F3411 Remote ID when broadcast.
    drone_source                  String            CODEC(ZSTD(1)),
    drone_lat                     Nullable(Float64) CODEC(ZSTD(1)),
    drone_lon                     Nullable(Float64) CODEC(ZSTD(1)),
    drone_alt_m                   Nullable(Float64) CODEC(ZSTD(1)),
    drone_height_m                Nullable(Float64) CODEC(ZSTD(1)),
    drone_speed_mps               Nullable(Float64) CODEC(ZSTD(1)),
    drone_vertical_speed_mps      Nullable(Float64) CODEC(ZSTD(1)),
    drone_heading_deg             Nullable(Float64) CODEC(ZSTD(1)),
    drone_uas_id                  String            CODEC(ZSTD(1)),
    drone_uas_id_type             String            CODEC(ZSTD(1)),
    drone_ua_type                 String            CODEC(ZSTD(1)),
    drone_operational_status      String            CODEC(ZSTD(1)),
    drone_operator_id             String            CODEC(ZSTD(1)),
    drone_operator_lat            Nullable(Float64) CODEC(ZSTD(1)),
    drone_operator_lon            Nullable(Float64) CODEC(ZSTD(1)),
    drone_operator_alt_m          Nullable(Float64) CODEC(ZSTD(1)),
    drone_operator_location_type  String            CODEC(ZSTD(1)),

    -- Jammer alarms (jammer_alarm).
    jammer_id           String                      CODEC(ZSTD(1)),
    jammer_alarm        String                      CODEC(ZSTD(1)),
    jammer_severity     String                      CODEC(ZSTD(1)),
    jammer_bands        Array(String)               CODEC(ZSTD(1)),

    -- Seizures (item_seized).
    seized_phones       UInt32,
    seized_mini_phones  UInt32,
    seized_sims         UInt32,
    seized_accessories  Nullable(UInt32),
    search_id           String                      CODEC(ZSTD(1)),
    found_by            String                      CODEC(ZSTD(1)),

    -- Retention: a judicial procedure suspends the 90-day clock (code pénitentiaire L223-4).
    -- Not in event v1: set by the procedure's operator with
    --   ALTER TABLE detections UPDATE judicial_hold = true WHERE ...
    judicial_hold       Bool DEFAULT false,

    -- Where the row came from: the writer resumes after the highest offset stored here.
    kafka_topic         String                      CODEC(ZSTD(1)),
    kafka_partition     UInt16,
    kafka_offset        Int64                       CODEC(Delta, ZSTD(1)),

    INDEX idx_imei imei_pseudo TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_imsi imsi_pseudo TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_event event_id TYPE bloom_filter(0.01) GRANULARITY 4,

    -- The highest offset per topic and partition, stored inside each part: it is written and
    -- merged atomically with the rows themselves (a materialized view is not: it is a second
    -- insert), so the writer resumes exactly after what the table holds. Read with
    --   SELECT kafka_partition, max(kafka_offset) FROM detections WHERE kafka_topic = ?
    --   GROUP BY kafka_partition
    PROJECTION kafka_offsets
    (
        SELECT kafka_topic, kafka_partition, max(kafka_offset), count()
        GROUP BY kafka_topic, kafka_partition
    )
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(observed_at)
ORDER BY (facility_id, observed_at, kind)
TTL toDateTime(observed_at) + INTERVAL 90 DAY DELETE WHERE NOT judicial_hold
SETTINGS non_replicated_deduplication_window = 10000;
