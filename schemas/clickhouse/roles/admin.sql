-- The administrator role: migrations and every DDL (vigiectl migrate, holds, exports, keys),
-- and the tests' own databases. Not a numbered migration: access control lives outside the
-- database's data; apply these files, as a user with access management, once per server or
-- cluster (the local chDB-based server, deploy/local/chserver, loads them at start).
-- {db} is the Vigie database.
--
-- Every privilege on every database, except what reaches outside the server: no table
-- function, table engine or dictionary that reads files, URLs, other servers or programs
-- (SOURCES is FILE, URL, REMOTE, S3, HDFS, MYSQL, POSTGRES, MONGO, REDIS, SQLITE, ODBC, JDBC,
-- AZURE, KAFKA, ... and their READ/WRITE forms; of the table engines that need a grant, only
-- Distributed, which reaches the servers of the configuration's clusters), and the server is
-- not shut down from SQL.

CREATE ROLE IF NOT EXISTS vigie_admin;

GRANT ALL ON *.* TO vigie_admin WITH GRANT OPTION;
REVOKE SOURCES ON *.* FROM vigie_admin;
REVOKE TABLE ENGINE ON * FROM vigie_admin;
GRANT TABLE ENGINE ON Distributed TO vigie_admin;
REVOKE CREATE DICTIONARY ON *.* FROM vigie_admin;
REVOKE SYSTEM SHUTDOWN ON *.* FROM vigie_admin;
