-- The read-only analyst role. Not a numbered migration: access control lives outside the
-- database's data (users.xml or a replicated access storage), needs a user with
-- access_management, and is applied by `migrate -analyst_role` (or by hand) once per cluster.
-- {db} is the Vigie database.
--
-- Analysts read detections, rollups and alerts; they never write, never change settings that
-- could bypass limits, and never see the writer's bookkeeping. Each of their queries is kept
-- in system.query_log with user and time; analysts set log_comment to the case reference that
-- justifies the consultation (directive 2016/680 art. 25).
--
-- Not supported on the local chDB-based server (chDB has no access storage: CREATE ROLE fails
-- with ACCESS_DENIED, code 497). Users are created by the operator, e.g.:
--   CREATE USER IF NOT EXISTS alice IDENTIFIED WITH sha256_password BY '…'
--       DEFAULT ROLE vigie_analyst SETTINGS PROFILE 'vigie_analyst';

CREATE ROLE IF NOT EXISTS vigie_analyst;

CREATE SETTINGS PROFILE IF NOT EXISTS vigie_analyst
    SETTINGS readonly = 2, max_execution_time = 120, max_memory_usage = 10000000000,
             max_result_rows = 1000000, result_overflow_mode = 'throw'
    TO vigie_analyst;

GRANT SELECT ON {db}.detections TO vigie_analyst;
GRANT SELECT ON {db}.detections_per_minute TO vigie_analyst;
GRANT SELECT ON {db}.tac_per_day TO vigie_analyst;
GRANT SELECT ON {db}.device_presence_per_day TO vigie_analyst;
GRANT SELECT ON {db}.tac_block_per_day TO vigie_analyst;
GRANT SELECT ON {db}.tac_block_national_per_day TO vigie_analyst;
GRANT SELECT ON {db}.facility_coverage TO vigie_analyst;
GRANT SELECT ON {db}.alerts TO vigie_analyst;
GRANT SELECT ON {db}.facilities TO vigie_analyst;
GRANT SELECT ON {db}.sensors TO vigie_analyst;
GRANT SELECT ON {db}.tac_models TO vigie_analyst;
GRANT SELECT ON {db}.operators TO vigie_analyst;
