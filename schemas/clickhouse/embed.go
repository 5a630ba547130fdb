// Package clickhouse embeds Vigie's ClickHouse schema: the numbered migrations
// (NNNN_name.sql, applied in order by pkg/chmigrate) and the analyst role.
//
// Every statement names its tables as {db}.table; the migrate step replaces {db} with the
// target database, quoted, so one schema serves production, the demo and per-test databases.
// A migration is never edited once released: a change is a new file.
package clickhouse

import "embed"

// Migrations holds the numbered migration files at the root of this folder.
//
//go:embed [0-9][0-9][0-9][0-9]_*.sql
var Migrations embed.FS

// AnalystRole is the SQL that creates the read-only analyst role and its grants. It needs a
// server with access management (not the local chDB-based server).
//
//go:embed roles/analyst.sql
var AnalystRole string

// Roles holds every access role (roles/*.sql: vigie_admin, vigie_writer, vigie_analyst), to
// apply once per server or cluster as a user with access management; the local chDB-based
// server (deploy/local/chserver) loads the same files at start.
//
//go:embed roles/*.sql
var Roles embed.FS

// DatabasePlaceholder is the token in the SQL files that stands for the target database.
const DatabasePlaceholder = "{db}"
