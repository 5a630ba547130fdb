-- The read-only analyst role. Not a numbered migration: access control lives outside the
-- database's data (users.xml or a replicated access storage), needs a user with
-- access_management, and is applied by `migrate -analyst_role` (or by hand) once per cluster;
-- the local chDB-based server (deploy/local/chserver) loads this file at start and enforces
-- the same rules. {db} is the Vigie database.
--
-- Analysts read detections, rollups and alerts; they never write, never change settings that
-- could bypass limits, and never see the writer's bookkeeping. Each of their queries is kept
-- in system.query_log with user and time; analysts set log_comment to the case reference that
-- justifies the consultation (directive 2016/680 art. 25).
--
-- Read-only: readonly = 2 (reads, and settings within the profile's bounds) and SELECT grants
-- only. No table function that reaches files, URLs, other servers or programs (file, url,
-- remote, s3, executable, mysql, …): they need CREATE TEMPORARY TABLE and a source grant
-- (SOURCES), revoked below, so only numbers(), zeros(), values(), view() and their like run.
-- No dictionary (dictGet revoked). Of the system tables, only those Grafana's ClickHouse
-- plugin reads (schema, functions, types): not system.processes, query_log or any that shows
-- other users' queries, which needs
--   <access_control_improvements><select_from_system_db_requires_grant>true</…>
--   <select_from_information_schema_requires_grant>true</…></access_control_improvements>
-- in the server's configuration.
-- Limits: time, memory and result size, each bounded MIN 1 (0 would mean no limit) and MAX
-- its value, so an analyst may lower them, never raise or remove them.
--
-- Users are created by the operator, e.g.:
--   CREATE USER IF NOT EXISTS alice IDENTIFIED WITH sha256_password BY '…'
--       DEFAULT ROLE vigie_analyst SETTINGS PROFILE 'vigie_analyst';

CREATE ROLE IF NOT EXISTS vigie_analyst;

CREATE SETTINGS PROFILE OR REPLACE vigie_analyst
    SETTINGS readonly = 2 CONST,
             max_execution_time = 120 MIN 1 MAX 120,
             max_memory_usage = 10000000000 MIN 1 MAX 10000000000,
             max_result_rows = 1000000 MIN 1 MAX 1000000,
             max_result_bytes = 1000000000 MIN 1 MAX 1000000000,
             result_overflow_mode = 'throw' CONST
    TO vigie_analyst;

REVOKE CREATE TEMPORARY TABLE, SOURCES, dictGet, INTROSPECTION ON *.* FROM vigie_analyst;

GRANT SELECT ON {db}.detections TO vigie_analyst;
GRANT SELECT ON {db}.detections_per_minute TO vigie_analyst;
GRANT SELECT ON {db}.tac_per_day TO vigie_analyst;
GRANT SELECT ON {db}.device_presence_per_day TO vigie_analyst;
GRANT SELECT ON {db}.serial_block_per_day TO vigie_analyst;
GRANT SELECT ON {db}.serial_block_national_per_day TO vigie_analyst;
GRANT SELECT ON {db}.facility_coverage TO vigie_analyst;
GRANT SELECT ON {db}.alerts TO vigie_analyst;
GRANT SELECT ON {db}.facilities TO vigie_analyst;
GRANT SELECT ON {db}.sensors TO vigie_analyst;
GRANT SELECT ON {db}.tac_models TO vigie_analyst;
GRANT SELECT ON {db}.operators TO vigie_analyst;
GRANT SELECT ON system.databases TO vigie_analyst;
GRANT SELECT ON system.tables TO vigie_analyst;
GRANT SELECT ON system.columns TO vigie_analyst;
GRANT SELECT ON system.functions TO vigie_analyst;
GRANT SELECT ON system.data_type_families TO vigie_analyst;
GRANT SELECT ON system.time_zones TO vigie_analyst;
GRANT SELECT ON system.one TO vigie_analyst;
GRANT SELECT ON information_schema.* TO vigie_analyst;
GRANT SELECT ON INFORMATION_SCHEMA.* TO vigie_analyst;
