-- The services' role (writer, enricher, correlator): rows in and out of the Vigie database,
-- nothing else. Not a numbered migration (see admin.sql). {db} is the Vigie
-- database.
--
-- The enricher replaces a reference table by filling a staging copy and swapping it in
-- (CREATE TABLE … AS, INSERT, EXCHANGE TABLES, DROP TABLE; on a cluster ON CLUSTER and
-- SYSTEM SYNC REPLICA); the correlator deletes its own watermarks (ALTER … DELETE); on a
-- cluster the writer's identity check reads every replica (clusterAllReplicas: a table
-- function of the REMOTE source; the server's remote_url_allow_hosts bounds where it reaches).
-- The system tables are those the services read (table layouts, the cluster's shape).

CREATE ROLE IF NOT EXISTS vigie_writer;

GRANT SELECT, INSERT, CREATE TABLE, DROP TABLE, ALTER DELETE, SYSTEM SYNC REPLICA ON {db}.* TO vigie_writer;
GRANT CLUSTER ON *.* TO vigie_writer;
GRANT CREATE TEMPORARY TABLE, REMOTE ON *.* TO vigie_writer;
GRANT SELECT ON system.databases TO vigie_writer;
GRANT SELECT ON system.tables TO vigie_writer;
GRANT SELECT ON system.columns TO vigie_writer;
GRANT SELECT ON system.clusters TO vigie_writer;
GRANT SELECT ON system.macros TO vigie_writer;
