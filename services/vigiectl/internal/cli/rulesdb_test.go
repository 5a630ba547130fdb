package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/vigiectl/internal/cli"
)

// detection is a row of detections as the writer stores an enriched event (the columns the
// rules read).
type detection struct {
	id, sensor, kind, facility, imei, imsi, tac string
	at                                          time.Time
	// keyVersion is the pseudonyms' key version (empty: none named); route the device's
	// route (pseudonym.IMEI.Route), which picks its partition when set.
	keyVersion, route string
}

// TestRulesTestOnADatabase runs rules test on a database of the local ClickHouse server
// holding three days of a few phones and, planted: one handset seen at two facilities
// (DEVICE_MULTI_SITE, streaming) and one SIM in three handsets (SIM_CHURN_SHARED_SIM,
// scheduled hourly); near misses of both: a handset at one facility only, a SIM in two
// handsets. The truth names them by facts only; the table says each plant found (the
// scheduled one within its promised hour and ten minutes), each decoy quiet, precision 1.
func TestRulesTestOnADatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, chAddr, db := migratedDatabase(ctx, t, "ctl")

	t0 := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -4)
	at := func(day int, h, m int) time.Time {
		return t0.Add(time.Duration(day)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	var rows []detection
	n := 0
	add := func(kind, facility, imei, imsi string, t time.Time) {
		n++
		rows = append(rows, detection{id: fmt.Sprintf("ctl-%05d", n), sensor: facility + "-mas-1", kind: kind, facility: facility,
			imei: imei, imsi: imsi, tac: "35000001", at: t})
	}
	// Background: a phone a facility, each its own SIM, twice a night for three days.
	for i, fac := range []string{"ma-a", "cd-b", "cp-c", "ma-d"} {
		for d := range 3 {
			for _, h := range []int{21, 23} {
				add("mas_attach", fac, pseudo("imei-bg", i), pseudo("imsi-bg", i), at(d, h, 7*i))
			}
		}
	}
	// Plant: a handset at ma-a on day 0, at cd-b on day 2 at 03:00.
	add("call_attempt", "ma-a", pseudo("imei-moved", 0), pseudo("imsi-moved", 0), at(0, 22, 30))
	add("call_attempt", "cd-b", pseudo("imei-moved", 0), pseudo("imsi-moved", 0), at(2, 3, 0))
	// Decoy: a handset seen twice, at ma-d only.
	add("call_attempt", "ma-d", pseudo("imei-stays", 0), pseudo("imsi-stays", 0), at(0, 22, 30))
	add("call_attempt", "ma-d", pseudo("imei-stays", 0), pseudo("imsi-stays", 0), at(2, 3, 0))
	// Plant: one SIM in three handsets at cp-c on day 1, the third at 10:20.
	for i, m := range []int{0, 40, 80} {
		add("sms_attempt", "cp-c", pseudo("imei-shared", i), pseudo("imsi-shared", 0), at(1, 9, m))
	}
	// Decoy: one SIM in two handsets at ma-a on day 1.
	for i, m := range []int{0, 40} {
		add("sms_attempt", "ma-a", pseudo("imei-pair", i), pseudo("imsi-pair", 0), at(1, 9, m))
	}
	insert(ctx, t, conn.Exec, db, rows)

	truth := filepath.Join(t.TempDir(), "summary.json")
	ts := func(t time.Time) string { return t.Format(time.RFC3339) }
	require.NoError(t, os.WriteFile(truth, []byte(fmt.Sprintf(`{"start":%q,"end":%q,
	"findings":[
	  {"scenario":"inmate-transfer","rule":"DEVICE_MULTI_SITE","facilities":["ma-a","cd-b"],"since":%q,"at":%q,"delay":0,"history":0},
	  {"scenario":"shared-sim","rule":"SIM_CHURN_SHARED_SIM","facilities":["cp-c"],"since":%q,"at":%q,"delay":%d,"history":0}],
	"decoys":[
	  {"scenario":"inmate-transfer","rule":"DEVICE_MULTI_SITE","facilities":["ma-d"],"since":%q,"at":%q,"delay":0,"history":0},
	  {"scenario":"shared-sim","rule":"SIM_CHURN_SHARED_SIM","facilities":["ma-a"],"since":%q,"at":%q,"delay":%d,"history":0}]}`,
		ts(t0), ts(t0.AddDate(0, 0, 3)),
		ts(at(0, 22, 30)), ts(at(2, 3, 0)), ts(at(1, 9, 0)), ts(at(1, 10, 20)), int64(70*time.Minute),
		ts(at(0, 22, 30)), ts(at(2, 3, 0)), ts(at(1, 9, 0)), ts(at(1, 9, 40)), int64(70*time.Minute))), 0o644))

	rules := []string{repoPath(t, "schemas/rules/device_multi_site.yaml"), repoPath(t, "schemas/rules/sim_churn_shared_sim.yaml"),
		repoPath(t, "schemas/rules/tac_spread.yaml")}
	// Configuration flags before, between and after the files, with and without "=".
	args := append([]string{"rules", "test", "-clickhouse.addrs", chAddr, rules[0], "-clickhouse.database=" + db}, rules[1], "-truth", truth, rules[2])
	code, out, errOut := run(t, args...)
	require.Equal(t, cli.ExitOK, code, errOut)
	t.Log("\n" + out)
	require.Contains(t, out, "DEVICE_MULTI_SITE (medium) device "+pseudo("imei-moved", 0)+"\n  facilities:  cd-b, ma-a\n")
	require.Contains(t, out, "SIM_CHURN_SHARED_SIM (medium) imsi_pseudo "+pseudo("imsi-shared", 0)+"\n  facilities:  cp-c\n")
	require.Contains(t, out, fmt.Sprintf("%d events, 2 findings from 1 streaming rule (DEVICE_MULTI_SITE) and 2 scheduled rules (SIM_CHURN_SHARED_SIM, TAC_SPREAD), event time %s .. %s\n",
		len(rows), at(0, 21, 0).Format("2006-01-02T15:04:05.000Z"), at(2, 23, 21).Add(time.Millisecond).Format("2006-01-02T15:04:05.000Z")))
	require.Equal(t, "| DEVICE_MULTI_SITE | streaming | none | 1 | 0 | 1 / 1 | 1 / 1 | 0 / 0 | 1 / 1 | – |", tableRow(t, out, "DEVICE_MULTI_SITE"))
	require.Equal(t, "| SIM_CHURN_SHARED_SIM | scheduled | none | 1 | 0 | 1 / 1 | 1 / 1 | 40m / 1h10m | 1 / 1 | – |", tableRow(t, out, "SIM_CHURN_SHARED_SIM"))
	// TAC_SPREAD needs 28 days (its 7-day window and 21-day baseline): three days of data
	// leave it warming up until the end of the day 28 days after the first event.
	require.Equal(t, "| TAC_SPREAD | scheduled | 28d: warming up (until "+at(29, 0, 0).Format(time.DateOnly)+") | 0 | 0 | – | – | – | – | – |", tableRow(t, out, "TAC_SPREAD"))
	require.Contains(t, out, "precision of all findings: 1.00 (2 of 2 about a plant)\n")

	// -from and -to bound the run: with the clock before the plants, nothing is found.
	code, out, errOut = run(t, "rules", "test", "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db, "-to", ts(at(1, 0, 0)), rules[0], rules[1], "-truth", truth)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Equal(t, "| SIM_CHURN_SHARED_SIM | scheduled | none | 0 | 0 | 0 / 1 | 0 / 1 | – / 1h10m | 1 / 1 | – |", tableRow(t, out, "SIM_CHURN_SHARED_SIM"))

	// Usage and server errors say what is wrong.
	code, _, errOut = run(t, "rules", "test", rules[0], "-from", "yesterday", "-clickhouse.database="+db)
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errOut, `-from: "yesterday" is not an RFC 3339 time or a date`)
	code, _, errOut = run(t, "rules", "test", rules[0], "-events", "x.ndjson", "-to", "2026-10-01")
	require.Equal(t, cli.ExitUsage, code)
	require.Contains(t, errOut, "-from and -to bound a run on a database")
	code, _, errOut = run(t, "rules", "test", rules[0], "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db+"_none")
	require.Equal(t, cli.ExitError, code)
	require.Contains(t, errOut, db+"_none")
}

// migratedDatabase makes a database of the test's own on the local ClickHouse server with
// vigiectl migrate, dropped at the end, and returns a connection to it, the server's
// address and the database's name.
func migratedDatabase(ctx context.Context, t *testing.T, prefix string) (driver.Conn, string, string) {
	t.Helper()
	chAddr := testenv.ClickHouseAddr(t)
	db := testenv.Name(t, prefix)
	code, _, errOut := run(t, "migrate", "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db)
	require.Equal(t, cli.ExitOK, code, errOut)
	cfg := clickhouse.DefaultConfig()
	cfg.Addrs, cfg.Database = []string{chAddr}, db
	conn, err := clickhouse.Open(ctx, cfg, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+db+"`")
		conn.Close()
	})
	return conn, chAddr, db
}

// pseudo is a pseudonym-like hex string, distinct for each (what, i).
func pseudo(what string, i int) string {
	s := fmt.Sprintf("%x", what+fmt.Sprint(i))
	return (s + strings.Repeat("0", 32))[:32]
}

func tableRow(t *testing.T, out, rule string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| "+rule+" ") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	t.Fatalf("no row for %s in:\n%s", rule, out)
	return ""
}

// insert writes rows into db's detections as the writer would: received a second after
// observed, each device's rows on one Kafka partition (route mod 3 as pkg/kafka sends them,
// else a hash of the key), offsets in event-time order.
func insert(ctx context.Context, t *testing.T, exec func(context.Context, string, ...any) error, db string, rows []detection) {
	t.Helper()
	slices.SortStableFunc(rows, func(a, b detection) int { return a.at.Compare(b.at) })
	offsets := map[uint16]int64{}
	var values []string
	for _, r := range rows {
		var sum int
		for _, c := range r.imei {
			sum += int(c)
		}
		part := uint16(sum % 3)
		if r.route != "" {
			n, err := strconv.ParseUint(r.route, 16, 8)
			require.NoError(t, err)
			part = uint16(n % 3)
		}
		dt := func(t time.Time) string {
			return "toDateTime64('" + t.Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')"
		}
		values = append(values, fmt.Sprintf("('%s', '%s', '%s', %s, %s, '%s', 'mas', '%s', '%s', '%s', '%s', 'detections.enriched.v1', %d, %d)",
			r.id, r.sensor, r.kind, dt(r.at), dt(r.at.Add(time.Second)), r.facility, r.keyVersion, r.imei, r.imsi, r.tac, part, offsets[part]))
		offsets[part]++
	}
	q := "INSERT INTO `" + db + "`.detections (event_id, sensor_id, kind, observed_at, received_at, facility_id, sensor_type, key_version, imei_pseudo, imsi_pseudo, tac, " +
		"kafka_topic, kafka_partition, kafka_offset) VALUES " + strings.Join(values, ", ")
	require.NoError(t, exec(ctx, q))
}
