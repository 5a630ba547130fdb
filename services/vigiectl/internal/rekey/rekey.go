// Package rekey maps the pseudonyms stored in ClickHouse forward onto the active key
// version after a rotation (`vigiectl keys forward`), so that a device seen before and after
// the rotation is one device to every rule, dashboard and query.
//
// The mapping needs no clear identifier: each version's pseudonym is the HMAC of the previous
// version's under the new key (pkg/pseudonym), so the key holder computes the map from what
// is stored. In order:
//
//  1. the distinct pseudonyms of detections under older versions (IMEI, IMSI, number, Remote
//     ID, operator id, pseudonymised event ids) and their forward images, into a Join table;
//  2. detections: one mutation rewrites those columns and key_version, for the rows whose
//     pseudonyms are all in the map (a row written meanwhile under an old version waits for
//     the next run, never gets an empty pseudonym);
//  3. the rollups that hold device identities (a uniq state or a device id), rebuilt from
//     detections over the days detections hold, by their own materialized view's query;
//  4. alerts: group keys, explanations and evidence ids mapped; a finding whose group key
//     changes gets the id the correlator derives from the new key (event.AlertID), so that
//     its next version extends it instead of opening a second one.
//
// Run it with the pipeline drained and the writer and correlator stopped (README of
// vigiectl): the rebuild of step 3 and the correlator's state must see a still table.
package rekey

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
)

// Report is what a run did.
type Report struct {
	// From are the versions whose rows were mapped, onto To.
	From []string
	To   string
	// Pseudonyms mapped, detections rows mapped, and rows still under an old version
	// (written during the run: run again).
	Pseudonyms int
	Rows, Left uint64
	// Rollups rebuilt, from Since.
	Rollups []string
	Since   time.Time
	// Alerts: rows rewritten under a new id, and rows updated in place.
	AlertsMoved, AlertsUpdated int
}

// mapTable is the Join table of the map, dropped at the end.
const mapTable = "pseudonym_forward"

// joinName is mapTable of db as joinGet names it.
func joinName(db string) string { return "'" + db + "." + mapTable + "'" }

// pseudonymColumns are the detections columns that hold pseudonyms of key_version.
var pseudonymColumns = []string{"imei_pseudo", "imsi_pseudo", "msisdn_pseudo", "drone_uas_id", "drone_operator_id"}

// Forward maps the pseudonyms of db stored under versions older than keys' active one.
// logf reports progress.
func Forward(ctx context.Context, conn driver.Conn, db string, keys *pseudonym.Keyring, logf func(string, ...any)) (Report, error) {
	to := keys.Active().KeyVersion()
	rep := Report{To: to}
	q := quoter(db)
	from, err := oldVersions(ctx, conn, q, keys)
	if err != nil {
		return rep, err
	}
	rep.From = from
	if len(from) == 0 {
		logf("detections hold no pseudonym under a version older than %s: nothing to map", to)
		return rep, nil
	}
	fwd, err := buildMap(ctx, conn, q, keys, from)
	if err != nil {
		return rep, err
	}
	rep.Pseudonyms = len(fwd)
	logf("%d pseudonyms under %v map onto %s", len(fwd), from, to)
	if err := loadMap(ctx, conn, q, fwd); err != nil {
		return rep, err
	}
	defer func() { _ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+q(mapTable)) }()

	if rep.Rows, rep.Left, err = mapDetections(ctx, conn, q, db, from, to); err != nil {
		return rep, err
	}
	logf("detections: %d rows mapped, %d left under old versions", rep.Rows, rep.Left)
	if rep.Rollups, rep.Since, err = rebuildRollups(ctx, conn, q, db); err != nil {
		return rep, err
	}
	logf("rollups rebuilt from %s: %s", rep.Since.Format(time.DateOnly), strings.Join(rep.Rollups, ", "))
	if rep.AlertsMoved, rep.AlertsUpdated, err = mapAlerts(ctx, conn, q, db, fwd); err != nil {
		return rep, err
	}
	logf("alerts: %d rows under a new id, %d updated in place", rep.AlertsMoved, rep.AlertsUpdated)
	return rep, nil
}

func quoter(db string) func(string) string {
	return func(table string) string { return "`" + db + "`.`" + table + "`" }
}

// oldVersions lists the versions stored in detections that are not the active one, oldest
// first; a version the keyring does not hold, or one after the active, is an error.
func oldVersions(ctx context.Context, conn driver.Conn, q func(string) string, keys *pseudonym.Keyring) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT key_version FROM "+q("detections")+" WHERE key_version != ''")
	if err != nil {
		return nil, fmt.Errorf("keys forward: stored versions: %w", err)
	}
	defer rows.Close()
	order := keys.Versions()
	active := slices.Index(order, keys.Active().KeyVersion())
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		switch i := slices.Index(order, v); {
		case i < 0:
			return nil, fmt.Errorf("keys forward: detections hold version %q, which the key file does not list (%v)", v, order)
		case i > active:
			return nil, fmt.Errorf("keys forward: detections hold version %q, after the active version %q: activate the latest version first", v, order[active])
		case i < active:
			out = append(out, v)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	return out, nil
}

// buildMap reads the distinct old pseudonyms and computes their forward images.
func buildMap(ctx context.Context, conn driver.Conn, q func(string) string, keys *pseudonym.Keyring, from []string) (map[string]string, error) {
	cols := append(slices.Clone(pseudonymColumns), "if(startsWith(event_id, 'p-'), substring(event_id, 3), '')")
	rows, err := conn.Query(ctx, "SELECT DISTINCT key_version, p FROM "+q("detections")+
		" ARRAY JOIN ["+strings.Join(cols, ", ")+"] AS p WHERE key_version IN ? AND p != ''", from)
	if err != nil {
		return nil, fmt.Errorf("keys forward: read pseudonyms: %w", err)
	}
	defer rows.Close()
	fwd := map[string]string{}
	for rows.Next() {
		var v, p string
		if err := rows.Scan(&v, &p); err != nil {
			return nil, err
		}
		if fwd[p], err = keys.Forward(v, p); err != nil {
			return nil, err
		}
	}
	return fwd, rows.Err()
}

func loadMap(ctx context.Context, conn driver.Conn, q func(string) string, fwd map[string]string) error {
	for _, s := range []string{
		"DROP TABLE IF EXISTS " + q(mapTable),
		"CREATE TABLE " + q(mapTable) + " (from String, to String) ENGINE = Join(ANY, LEFT, from)",
	} {
		if err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("keys forward: %w", err)
		}
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+q(mapTable))
	if err != nil {
		return fmt.Errorf("keys forward: load map: %w", err)
	}
	for p, n := range fwd {
		if err := batch.Append(p, n); err != nil {
			return err
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("keys forward: load map: %w", err)
	}
	return nil
}

// mapDetections rewrites the pseudonym columns of the rows under from, whose pseudonyms are
// all in the map, and counts the rows mapped and left.
func mapDetections(ctx context.Context, conn driver.Conn, q func(string) string, db string, from []string, to string) (mapped, left uint64, err error) {
	m := joinName(db)
	get := func(x string) string { return "joinGetOrNull(" + m + ", 'to', " + x + ")" }
	var sets, all []string
	for _, c := range pseudonymColumns {
		sets = append(sets, fmt.Sprintf("%[1]s = if(%[1]s = '', '', assumeNotNull(%[2]s))", c, get(c)))
		all = append(all, fmt.Sprintf("(%s = '' OR %s IS NOT NULL)", c, get(c)))
	}
	ev := "substring(event_id, 3)"
	sets = append(sets, fmt.Sprintf("event_id = if(startsWith(event_id, 'p-'), concat('p-', assumeNotNull(%s)), event_id)", get(ev)))
	all = append(all, fmt.Sprintf("(NOT startsWith(event_id, 'p-') OR %s IS NOT NULL)", get(ev)))
	sets = append(sets, "key_version = '"+to+"'")
	where := "key_version IN ('" + strings.Join(from, "', '") + "') AND " + strings.Join(all, " AND ")
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+q("detections")+" WHERE "+where).Scan(&mapped); err != nil {
		return 0, 0, fmt.Errorf("keys forward: count detections: %w", err)
	}
	if err := conn.Exec(ctx, "ALTER TABLE "+q("detections")+" UPDATE "+strings.Join(sets, ", ")+" WHERE "+where+" SETTINGS mutations_sync = 2"); err != nil {
		return 0, 0, fmt.Errorf("keys forward: map detections: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+q("detections")+" WHERE key_version IN ?", from).Scan(&left); err != nil {
		return 0, 0, fmt.Errorf("keys forward: count detections: %w", err)
	}
	return mapped, left, nil
}

// rebuildRollups rebuilds, from detections, every materialized view target that holds
// device identities, over the days detections hold (all of them if no TTL has trimmed them
// yet, else from the first whole day).
func rebuildRollups(ctx context.Context, conn driver.Conn, q func(string) string, db string) ([]string, time.Time, error) {
	var first time.Time
	if err := conn.QueryRow(ctx, "SELECT toDate(min(observed_at)) FROM "+q("detections")).Scan(&first); err != nil {
		return nil, first, fmt.Errorf("keys forward: first day: %w", err)
	}
	views, err := materializedViews(ctx, conn, db)
	if err != nil {
		return nil, first, err
	}
	var rebuilt []string
	for _, v := range views {
		if !strings.Contains(v.query, "device_id") {
			continue // holds no device identity (facility coverage, event counts)
		}
		var oldest time.Time
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT toDate(min(%s)) FROM %s", v.timeColumn, q(v.target))).Scan(&oldest); err != nil {
			return nil, first, fmt.Errorf("keys forward: %s: %w", v.target, err)
		}
		since := first
		if oldest.Before(first) {
			since = first.AddDate(0, 0, 1) // detections lost part of their first day to the TTL
		}
		src := fmt.Sprintf("(SELECT *, device_id FROM %s WHERE observed_at >= toDateTime64('%s', 3, 'UTC')) AS detections", q("detections"), since.Format(time.DateOnly))
		query, ok := replaceSource(v.query, db)
		if !ok {
			return nil, first, fmt.Errorf("keys forward: the view of %s does not read %s.detections", v.target, db)
		}
		for _, s := range []string{
			fmt.Sprintf("ALTER TABLE %s DELETE WHERE %s >= toDate('%s') SETTINGS mutations_sync = 2", q(v.target), v.timeColumn, since.Format(time.DateOnly)),
			"INSERT INTO " + q(v.target) + " " + strings.Replace(query, sourceMark, src, 1),
		} {
			if err := conn.Exec(ctx, s); err != nil {
				return nil, first, fmt.Errorf("keys forward: rebuild %s: %w", v.target, err)
			}
		}
		rebuilt = append(rebuilt, v.target)
	}
	return rebuilt, first, nil
}

type view struct{ target, query, timeColumn string }

// materializedViews lists the views of db that read detections, with their target and its
// time column (day or minute; views without one are left out).
func materializedViews(ctx context.Context, conn driver.Conn, db string) ([]view, error) {
	rows, err := conn.Query(ctx, `SELECT name, as_select, create_table_query FROM system.tables
		WHERE database = ? AND engine = 'MaterializedView' ORDER BY name`, db)
	if err != nil {
		return nil, fmt.Errorf("keys forward: list views: %w", err)
	}
	defer rows.Close()
	var out []view
	for rows.Next() {
		var name, query, create string
		if err := rows.Scan(&name, &query, &create); err != nil {
			return nil, err
		}
		m := toTable.FindStringSubmatch(create)
		if m == nil {
			continue
		}
		out = append(out, view{target: m[1], query: query})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		var cols []string
		if err := conn.QueryRow(ctx, "SELECT groupArray(name) FROM system.columns WHERE database = ? AND table = ? AND name IN ('day', 'minute')", db, out[i].target).Scan(&cols); err != nil {
			return nil, err
		}
		if len(cols) == 1 {
			out[i].timeColumn = cols[0]
		}
	}
	return slices.DeleteFunc(out, func(v view) bool { return v.timeColumn == "" }), nil
}

var toTable = regexp.MustCompile("(?i)\\bTO\\s+`?[^`.\\s]+`?\\.`?([A-Za-z0-9_]+)`?")

const sourceMark = "\x00source\x00"

// replaceSource marks where query reads db.detections, in any of the forms the server
// writes it.
func replaceSource(query, db string) (string, bool) {
	for _, form := range []string{db + ".detections", "`" + db + "`.detections", db + ".`detections`", "`" + db + "`.`detections`"} {
		if i := strings.Index(query, "FROM "+form); i >= 0 {
			return query[:i] + "FROM " + sourceMark + query[i+len("FROM "+form):], true
		}
	}
	return query, false
}

// pseudonymToken is a run of hex digits inside a group key or an explanation: mapped when it
// is a whole pseudonym of the map.
var pseudonymToken = regexp.MustCompile(`[0-9a-f]+`)

// mapAlerts maps the pseudonyms in alerts: a finding whose group key changes is written
// again under the id the correlator derives from its new key (then its old rows deleted);
// one whose evidence ids only change is updated in place.
func mapAlerts(ctx context.Context, conn driver.Conn, q func(string) string, db string, fwd map[string]string) (moved, updated int, err error) {
	rows, err := conn.Query(ctx, "SELECT "+alertColumns+" FROM "+q("alerts"))
	if err != nil {
		return 0, 0, fmt.Errorf("keys forward: read alerts: %w", err)
	}
	mapText := func(s string) string {
		return pseudonymToken.ReplaceAllStringFunc(s, func(p string) string {
			if n, ok := fwd[p]; ok {
				return n
			}
			return p
		})
	}
	var again []storedAlert
	inPlace := map[string]bool{}
	for rows.Next() {
		var a storedAlert
		if err := rows.Scan(a.dest()...); err != nil {
			rows.Close()
			return 0, 0, err
		}
		key, explanation := mapText(a.GroupKey), mapText(a.Explanation)
		ids := make([]string, len(a.EvidenceIDs))
		changedIDs := false
		for i, id := range a.EvidenceIDs {
			ids[i] = id
			if n, ok := fwd[strings.TrimPrefix(id, "p-")]; ok && strings.HasPrefix(id, "p-") {
				ids[i], changedIDs = "p-"+n, true
			}
		}
		switch {
		case key != a.GroupKey:
			a.oldID = a.ID
			a.ID = event.AlertID(a.Rule, key, a.CreatedAt)
			a.GroupKey, a.Explanation, a.EvidenceIDs = key, explanation, ids
			again = append(again, a)
		case changedIDs || explanation != a.Explanation:
			inPlace[a.ID] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	if len(again) > 0 {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+q("alerts")+" ("+alertColumns+")")
		if err != nil {
			return 0, 0, fmt.Errorf("keys forward: write alerts: %w", err)
		}
		old := map[string]bool{}
		for _, a := range again {
			if err := batch.Append(a.values()...); err != nil {
				return 0, 0, err
			}
			old[a.oldID] = true
		}
		if err := batch.Send(); err != nil {
			return 0, 0, fmt.Errorf("keys forward: write alerts: %w", err)
		}
		if err := conn.Exec(ctx, "ALTER TABLE "+q("alerts")+" DELETE WHERE alert_id IN ? SETTINGS mutations_sync = 2", keysOf(old)); err != nil {
			return 0, 0, fmt.Errorf("keys forward: delete old alert ids: %w", err)
		}
	}
	if len(inPlace) > 0 {
		m := joinName(db)
		ids := "arrayMap(x -> if(startsWith(x, 'p-'), concat('p-', ifNull(joinGetOrNull(" + m + ", 'to', substring(x, 3)), substring(x, 3))), x), evidence_event_ids)"
		if err := conn.Exec(ctx, "ALTER TABLE "+q("alerts")+" UPDATE evidence_event_ids = "+ids+" WHERE alert_id IN ? SETTINGS mutations_sync = 2", keysOf(inPlace)); err != nil {
			return 0, 0, fmt.Errorf("keys forward: update alerts: %w", err)
		}
	}
	return len(again), len(inPlace), nil
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// alertColumns are the columns of an alerts row: the alert's and its hold.
const alertColumns = event.AlertColumns + ", judicial_hold"

type storedAlert struct {
	event.Alert
	hold  bool
	oldID string
}

func (a *storedAlert) dest() []any {
	return []any{&a.ID, &a.Rule, &a.Severity, &a.GroupKey, &a.Facilities, &a.FirstEvidenceAt, &a.LastEvidenceAt,
		&a.WindowStart, &a.WindowEnd, &a.EvidenceIDs, &a.EvidenceCount, &a.Explanation, &a.CreatedAt, &a.UpdatedAt, &a.Version, &a.hold}
}

func (a *storedAlert) values() []any {
	return []any{a.ID, a.Rule, a.Severity, a.GroupKey, a.Facilities, a.FirstEvidenceAt, a.LastEvidenceAt,
		a.WindowStart, a.WindowEnd, a.EvidenceIDs, a.EvidenceCount, a.Explanation, a.CreatedAt, a.UpdatedAt, a.Version, a.hold}
}
