-- 0004: reference data for analysts (schemas/reference, loaded by the enricher).
--
-- The same facilities, sensors, phone models (TAC) and operators (MCC/MNC) the enricher
-- joins events with, so that analysts can join detections with them in SQL, e.g.
--   SELECT f.disp, count() FROM {db}.detections d JOIN {db}.facilities f USING facility_id ...
-- The enricher (services/enricher, internal/chref) fills each table whole: it inserts the
-- new version into a fresh table created AS the table below, swaps the two with EXCHANGE
-- TABLES (atomic: a query sees the old version or the new one, never a mix or nothing) and
-- drops the old one. ref_version is pkg/reference's content version (a hash of the files).
--
-- Licences travel with the data: tac_models is the Osmocom TAC database (CC BY-SA 3.0,
-- (c) Harald Welte 2016) and operators comes from Wikipedia (CC BY-SA): credit them in any
-- export. See schemas/reference/README.md for every column's source and meaning.

CREATE TABLE IF NOT EXISTS {db}.facilities
(
    facility_id      String,
    name             String,
    type_code        LowCardinality(String),
    type_label       LowCardinality(String),
    city             String,
    department_code  LowCardinality(String),
    department_name  LowCardinality(String),
    disp             LowCardinality(String),
    region_code      LowCardinality(String),
    -- Approximate (commune coordinates), WGS84 decimal degrees; NULL when unknown.
    lat              Nullable(Float64),
    lon              Nullable(Float64),
    capacity         Nullable(UInt32),
    security_level   LowCardinality(String),
    ref_version      LowCardinality(String),
    loaded_at        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY facility_id;

CREATE TABLE IF NOT EXISTS {db}.sensors
(
    sensor_id        String,
    facility_id      LowCardinality(String),
    building         LowCardinality(String),
    floor            Int16,
    zone_type        LowCardinality(String),
    zone             LowCardinality(String),
    -- Metres east and north of the facility's reference point.
    x_m              Float32,
    y_m              Float32,
    sensor_type      LowCardinality(String),
    vendor           LowCardinality(String),
    ref_version      LowCardinality(String),
    loaded_at        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (facility_id, sensor_id);

CREATE TABLE IF NOT EXISTS {db}.tac_models
(
    tac              String,
    manufacturer     LowCardinality(String),
    model            String,
    mini_phone       Bool,
    ref_version      LowCardinality(String),
    loaded_at        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY tac;

CREATE TABLE IF NOT EXISTS {db}.operators
(
    mcc              LowCardinality(String),
    mnc              LowCardinality(String),
    country_iso      LowCardinality(String),
    country_name     LowCardinality(String),
    brand            String,
    operator         String,
    status           LowCardinality(String),
    ref_version      LowCardinality(String),
    loaded_at        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (mcc, mnc);
