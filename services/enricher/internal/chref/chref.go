// Package chref copies the enricher's reference data into the ClickHouse tables facilities,
// sensors, tac_models and operators (schemas/clickhouse/0004_reference.sql) so that analysts
// can join detections with it in SQL.
//
// Each table is replaced whole and atomically: the new version is inserted into a fresh
// table created AS the live one, the two are swapped with EXCHANGE TABLES, and the old
// version is dropped. A query sees the old version or the new one, never a mix and never an
// empty table. A table already holding the version is left alone, so restarts and several
// enricher replicas do not rewrite it.
//
// On a cluster (NewClusterLoader, docs/clickhouse-cluster.md) the reference tables are
// ReplicatedMergeTree on every server, each with its Keeper path fixed when it was created,
// so a copy made AS the live table would claim the live table's path: the staging table is
// created ON CLUSTER with its engine spelled out and a Keeper path of its own (the path
// follows the staging table's name, which is new for every load), filled on one server,
// synced to every replica, then swapped ON CLUSTER; the old version is dropped ON CLUSTER.
package chref

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/retry"
)

// Tables are the reference tables, in load order.
var Tables = []string{"facilities", "sensors", "tac_models", "operators"}

// ErrBadDatabase means the database name is not a plain identifier.
var ErrBadDatabase = errors.New("database name must match [A-Za-z_][A-Za-z0-9_]*")

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxAttempts is how often Load tries one table before it returns the error (the Syncer
// then retries the whole load, more slowly).
const maxAttempts = 4

// Loader writes reference snapshots to one ClickHouse database.
type Loader struct {
	conn     driver.Conn
	database string
	logger   *zap.Logger
	// attempt spaces the attempts at one table.
	attempt retry.Policy
	// cluster is the ClickHouse cluster the schema was migrated for; "" is one server.
	cluster string
	// checkCluster says whether the connected server is a member of cluster (a test
	// replaces it); checked once, before the first cluster load.
	checkCluster func(context.Context) error
	clusterOK    bool
}

// NewLoader returns a loader writing to database over conn. The tables must exist (the
// migrate step creates them).
func NewLoader(conn driver.Conn, database string, logger *zap.Logger) (*Loader, error) {
	if !identifier.MatchString(database) {
		return nil, fmt.Errorf("%q: %w", database, ErrBadDatabase)
	}
	return &Loader{conn: conn, database: database, logger: logger.Named("chref"),
		attempt: retry.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2}}, nil
}

// NewClusterLoader returns a loader writing to database on the cluster the schema was
// migrated for (`vigiectl migrate -clickhouse.cluster NAME`): the reference tables are
// Replicated on every server, and every statement that changes them runs ON CLUSTER.
func NewClusterLoader(conn driver.Conn, database, cluster string, logger *zap.Logger) (*Loader, error) {
	if err := chmigrate.ValidateClusterName(cluster); err != nil {
		return nil, err
	}
	l, err := NewLoader(conn, database, logger)
	if err != nil {
		return nil, err
	}
	l.cluster = cluster
	l.checkCluster = func(ctx context.Context) error { return chmigrate.CheckCluster(ctx, conn, cluster) }
	return l, nil
}

// Load makes every reference table hold snap's version. It returns how many tables it
// rewrote (0 when all already held the version).
func (l *Loader) Load(ctx context.Context, snap *reference.Snapshot) (int, error) {
	loadedAt := time.Now().UTC()
	rewritten := 0
	for _, table := range Tables {
		start := time.Now()
		// A table is small and replaced whole, so a failed attempt (a dropped connection)
		// is simply made again on a fresh connection, a few times; past that the syncer
		// retries the whole load later.
		rows := 0
		attempts := 0
		err := retry.Do(ctx, l.attempt, func(ctx context.Context) error {
			attempts++
			current, err := l.version(ctx, table)
			if err == nil {
				if current == snap.Version() {
					rows = -1
					return nil
				}
				rows, err = l.replace(ctx, table, func(batch driver.Batch) (int, error) {
					return appendRows(batch, table, snap, loadedAt)
				})
			}
			if err != nil && attempts >= maxAttempts {
				return retry.Permanent(err)
			}
			return err
		}, func(err error, attempt int, wait time.Duration) {
			l.logger.Debug("reference table load attempt failed", zap.String("table", table), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		})
		if err != nil {
			return rewritten, fmt.Errorf("load reference table %s.%s: %w", l.database, table, err)
		}
		if rows < 0 {
			continue
		}
		rewritten++
		l.logger.Info("reference table loaded", zap.String("table", table), zap.Int("rows", rows),
			zap.String("version", snap.Version()), zap.Duration("took", time.Since(start)))
	}
	return rewritten, nil
}

func (l *Loader) version(ctx context.Context, table string) (string, error) {
	// Query and drain rather than QueryRow: QueryRow closes the result before its end
	// packet, and the client then cancels a query the server has finished, which the local
	// chDB-based server answers by closing the connection.
	rows, err := l.conn.Query(ctx, fmt.Sprintf("SELECT toString(any(ref_version)) FROM `%s`.`%s`", l.database, table))
	if err != nil {
		return "", fmt.Errorf("read version of %s.%s (has the migrate step run?): %w", l.database, table, err)
	}
	defer rows.Close()
	var v string
	for rows.Next() {
		if err := rows.Scan(&v); err != nil {
			return "", fmt.Errorf("read version of %s.%s: %w", l.database, table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read version of %s.%s: %w", l.database, table, err)
	}
	return v, nil
}

// replace fills a staging copy of table with fill and swaps it in.
func (l *Loader) replace(ctx context.Context, table string, fill func(driver.Batch) (int, error)) (rows int, err error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return 0, fmt.Errorf("staging name: %w", err)
	}
	live := fmt.Sprintf("`%s`.`%s`", l.database, table)
	staging := fmt.Sprintf("`%s`.`%s_load_%s`", l.database, table, hex.EncodeToString(suffix[:]))
	st := statements{create: fmt.Sprintf("CREATE TABLE %s AS %s", staging, live),
		// Plain DROP on one server: DROP … SYNC can hang on chDB.
		drop:     "DROP TABLE IF EXISTS " + staging,
		exchange: fmt.Sprintf("EXCHANGE TABLES %s AND %s", live, staging)}
	dropTimeout := 30 * time.Second
	if l.cluster != "" {
		if !l.clusterOK {
			if err := l.checkCluster(ctx); err != nil {
				return 0, err
			}
			l.clusterOK = true
		}
		if st, err = l.clusterStatements(ctx, table, live, staging); err != nil {
			return 0, err
		}
		// ON CLUSTER waits for every server up to distributed_ddl_task_timeout (180 s by
		// default); the DROP is queued for every server even if the wait is cut short.
		dropTimeout = 200 * time.Second
	}
	defer func() {
		// After the exchange the staging name holds the old version; before it, the
		// unfinished new one (or, after a failed CREATE … ON CLUSTER, the copies some
		// servers made). Either way it goes.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
		defer cancel()
		if derr := l.conn.Exec(dctx, st.drop); derr != nil {
			l.logger.Warn("drop staging table", zap.String("table", staging), zap.Error(derr))
		}
	}()
	if err := l.conn.Exec(ctx, st.create); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	batch, err := l.conn.PrepareBatch(ctx, "INSERT INTO "+staging+" ("+columns[table]+")")
	if err != nil {
		return 0, fmt.Errorf("prepare insert: %w", err)
	}
	if rows, err = fill(batch); err != nil {
		_ = batch.Abort()
		return 0, err
	}
	if err := batch.Send(); err != nil {
		return 0, fmt.Errorf("insert %d rows: %w", rows, err)
	}
	if st.sync != "" {
		if err := l.conn.Exec(ctx, st.sync); err != nil {
			return 0, fmt.Errorf("sync staging table's replicas: %w", err)
		}
	}
	if err := l.conn.Exec(ctx, st.exchange); err != nil {
		return 0, fmt.Errorf("exchange tables: %w", err)
	}
	return rows, nil
}

// statements are those replace sends around the insert, in this order: create, (insert),
// sync (cluster only), exchange, drop.
type statements struct {
	create, sync, exchange, drop string
}

// clusterStatements are replace's statements on a cluster. The staging table copies the
// live table's columns (AS live) and its sorting and partition keys, read from the connected
// server, with the engine spelled out: ReplicatedMergeTree on its own Keeper path under
// /clickhouse/tables/all/ (one replica group spanning every server, as the migrations place
// reference tables), {table} being the staging name, new for every load. SYSTEM SYNC
// REPLICA ON CLUSTER returns once every server's replica has fetched the inserted part, so
// no server swaps in a table it has not received yet; EXCHANGE then swaps the two on every
// server, and the DROP … SYNC removes the old version and its replica from Keeper at once.
func (l *Loader) clusterStatements(ctx context.Context, table, live, staging string) (statements, error) {
	engine, sortingKey, partitionKey, err := l.layout(ctx, table)
	if err != nil {
		return statements{}, err
	}
	if engine != "ReplicatedMergeTree" {
		return statements{}, fmt.Errorf("%s.%s has engine %s, not ReplicatedMergeTree: was the database migrated for cluster %s (vigiectl migrate -clickhouse.cluster)?", l.database, table, engine, l.cluster)
	}
	return clusterStatements(live, staging, sortingKey, partitionKey), nil
}

func clusterStatements(live, staging, sortingKey, partitionKey string) statements {
	on := " ON CLUSTER '" + chmigrate.MacroCluster + "'"
	create := "CREATE TABLE " + staging + on + " AS " + live +
		" ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}')"
	if partitionKey != "" {
		create += " PARTITION BY (" + partitionKey + ")"
	}
	create += " ORDER BY (" + sortingKey + ")"
	return statements{
		create:   create,
		sync:     "SYSTEM SYNC REPLICA" + on + " " + staging,
		exchange: "EXCHANGE TABLES " + live + " AND " + staging + on,
		drop:     "DROP TABLE IF EXISTS " + staging + on + " SYNC",
	}
}

// layout reads the live table's engine, sorting key and partition key on the connected
// server.
func (l *Loader) layout(ctx context.Context, table string) (engine, sortingKey, partitionKey string, err error) {
	rows, err := l.conn.Query(ctx, "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = ? AND name = ?", l.database, table)
	if err != nil {
		return "", "", "", fmt.Errorf("read layout of %s.%s: %w", l.database, table, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		if err := rows.Scan(&engine, &sortingKey, &partitionKey); err != nil {
			return "", "", "", fmt.Errorf("read layout of %s.%s: %w", l.database, table, err)
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return "", "", "", fmt.Errorf("read layout of %s.%s: %w", l.database, table, err)
	}
	if !found || sortingKey == "" {
		return "", "", "", fmt.Errorf("%s.%s: no such MergeTree table (has the migrate step run?)", l.database, table)
	}
	return engine, sortingKey, partitionKey, nil
}

var columns = map[string]string{
	"facilities": "facility_id, name, type_code, type_label, city, department_code, department_name, disp, region_code, lat, lon, capacity, security_level, ref_version, loaded_at",
	"sensors":    "sensor_id, facility_id, building, floor, zone_type, zone, x_m, y_m, sensor_type, vendor, ref_version, loaded_at",
	"tac_models": "tac, manufacturer, model, mini_phone, ref_version, loaded_at",
	"operators":  "mcc, mnc, country_iso, country_name, brand, operator, status, ref_version, loaded_at",
}

func appendRows(batch driver.Batch, table string, snap *reference.Snapshot, at time.Time) (int, error) {
	v := snap.Version()
	n := 0
	appendRow := func(args ...any) error {
		n++
		if err := batch.Append(args...); err != nil {
			return fmt.Errorf("append row %d: %w", n, err)
		}
		return nil
	}
	switch table {
	case "facilities":
		for _, f := range snap.Facilities() {
			var lat, lon *float64
			if f.HasCoords {
				lat, lon = &f.Lat, &f.Lon
			}
			var capacity *uint32
			if f.Capacity > 0 {
				c := uint32(f.Capacity)
				capacity = &c
			}
			if err := appendRow(f.ID, f.Name, f.TypeCode, f.TypeLabel, f.City, f.DepartmentCode, f.DepartmentName,
				f.DISP, f.RegionCode, lat, lon, capacity, f.SecurityLevel, v, at); err != nil {
				return n, err
			}
		}
	case "sensors":
		for _, s := range snap.Sensors() {
			if err := appendRow(s.ID, s.FacilityID, s.Building, int16(s.Floor), string(s.ZoneType), s.Zone,
				float32(s.X), float32(s.Y), string(s.Type), s.Vendor, v, at); err != nil {
				return n, err
			}
		}
	case "tac_models":
		for _, m := range snap.Models() {
			if err := appendRow(m.TAC, m.Manufacturer, m.Model, m.Mini, v, at); err != nil {
				return n, err
			}
		}
	case "operators":
		for _, o := range snap.Operators() {
			if err := appendRow(o.MCC, o.MNC, o.CountryISO, o.Country, o.Brand, o.Name, o.Status, v, at); err != nil {
				return n, err
			}
		}
	default:
		return 0, fmt.Errorf("unknown reference table %q", table)
	}
	return n, nil
}
