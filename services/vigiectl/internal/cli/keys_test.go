package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/services/vigiectl/internal/cli"
)

// A device seen before and after a key rotation is one device once keys forward has run:
// on the local ClickHouse server, a phone at ma-a under k1 then at cd-b under k2 is two
// devices to DEVICE_MULTI_SITE (as rules test replays the table) and to the rollups; after
// keys forward, every row is under k2 with the pseudonym the new key gives the IMEI, the
// rule finds the move, the rollups count each phone once with every event, and a stored
// alert about a k1 pseudonym carries the k2 one under the id the correlator would derive.
func TestKeysForwardOneDeviceAcrossRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, chAddr, db := migratedDatabase(ctx, t, "rekey")

	keyFile := filepath.Join(t.TempDir(), "keys.yaml")
	require.NoError(t, os.WriteFile(keyFile, []byte("active: k1\nblock_key: "+strings.Repeat("b7", 32)+"\nkeys:\n  k1: "+strings.Repeat("a1", 32)+"\n"), 0o600))
	const moved, stays = "358288021042170", "358288029876548"
	device := func(keys *pseudonym.Keyring, v, clear string) pseudonym.IMEI {
		p, ok := keys.Version(v)
		require.True(t, ok)
		r, err := p.IMEI(clear)
		require.NoError(t, err)
		return r
	}
	imei := func(keys *pseudonym.Keyring, v, clear string) string { return device(keys, v, clear).Pseudo }
	k1, err := pseudonym.LoadFile(keyFile)
	require.NoError(t, err)

	t0 := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -4)
	at := func(day, h int) time.Time {
		return t0.Add(time.Duration(day)*24*time.Hour + time.Duration(h)*time.Hour)
	}
	rows := []detection{
		{id: "rk-1", sensor: "ma-a-mas-1", kind: "call_attempt", facility: "ma-a", imei: imei(k1, "k1", moved), tac: "35828802", at: at(0, 22), keyVersion: "k1", route: device(k1, "k1", moved).Route},
		{id: "rk-2", sensor: "ma-d-mas-1", kind: "call_attempt", facility: "ma-d", imei: imei(k1, "k1", stays), tac: "35828802", at: at(0, 23), keyVersion: "k1", route: device(k1, "k1", stays).Route},
	}
	code, out, errOut := run(t, "keys", "rotate", "-key_file", keyFile)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "version k2 added and active")
	k2, err := pseudonym.LoadFile(keyFile)
	require.NoError(t, err)
	rows = append(rows,
		detection{id: "rk-3", sensor: "cd-b-mas-1", kind: "call_attempt", facility: "cd-b", imei: imei(k2, "k2", moved), tac: "35828802", at: at(2, 3), keyVersion: "k2", route: device(k2, "k2", moved).Route},
		detection{id: "rk-4", sensor: "ma-d-mas-1", kind: "call_attempt", facility: "ma-d", imei: imei(k2, "k2", stays), tac: "35828802", at: at(2, 4), keyVersion: "k2", route: device(k2, "k2", stays).Route})
	insert(ctx, t, conn.Exec, db, rows)
	// A finding of the old key about the phone that stays (as if a rule had raised it).
	created := at(0, 23)
	old := event.Alert{ID: event.AlertID("DEVICE_MULTI_SITE", rows[1].imei, created), Rule: "DEVICE_MULTI_SITE", Severity: "medium",
		GroupKey: rows[1].imei, Facilities: []string{"ma-d"}, FirstEvidenceAt: created, LastEvidenceAt: created, WindowStart: created, WindowEnd: created,
		EvidenceIDs: []string{"rk-2"}, EvidenceCount: 1, Explanation: "device " + rows[1].imei + " seen at 1 facilities", CreatedAt: created, UpdatedAt: created, Version: 1}
	require.NoError(t, conn.Exec(ctx, "INSERT INTO `"+db+"`.alerts (alert_id, rule, severity, group_key, facilities, first_evidence_at, last_evidence_at, window_start, window_end, evidence_event_ids, evidence_count, explanation, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		old.ID, old.Rule, old.Severity, old.GroupKey, old.Facilities, old.FirstEvidenceAt, old.LastEvidenceAt, old.WindowStart, old.WindowEnd, old.EvidenceIDs, old.EvidenceCount, old.Explanation, old.CreatedAt, old.UpdatedAt, old.Version))

	rule := repoPath(t, "schemas/rules/device_multi_site.yaml")
	ruleTest := func() string {
		code, out, errOut := run(t, "rules", "test", "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db, rule)
		require.Equal(t, cli.ExitOK, code, errOut)
		return out
	}
	counts := func() (devices, rollupDevices, presenceDevices, presenceEvents uint64) {
		q := func(sql string, dest *uint64) {
			require.NoError(t, conn.QueryRow(ctx, strings.ReplaceAll(sql, "{db}", "`"+db+"`")).Scan(dest))
		}
		q("SELECT uniqExact(imei_pseudo) FROM {db}.detections", &devices)
		q("SELECT uniqMerge(devices) FROM {db}.tac_per_day", &rollupDevices)
		q("SELECT uniqExact(device_id) FROM {db}.device_presence_per_day", &presenceDevices)
		q("SELECT sum(events) FROM {db}.device_presence_per_day", &presenceEvents)
		return
	}
	require.Contains(t, ruleTest(), "0 findings", "before: the phone that moved is two devices")
	d, r, p, _ := counts()
	require.Equal(t, []uint64{4, 4, 4}, []uint64{d, r, p})

	code, out, errOut = run(t, "keys", "forward", "-key_file", keyFile, "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db)
	require.Equal(t, cli.ExitOK, code, errOut)
	t.Log("\n" + out)
	require.Contains(t, out, "2 pseudonyms under [k1] map onto k2")
	require.Contains(t, out, "detections: 2 rows mapped, 0 left under old versions")

	var versions []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT groupUniqArray(key_version) FROM `"+db+"`.detections").Scan(&versions))
	require.Equal(t, []string{"k2"}, versions)
	var pseudos []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT arraySort(groupUniqArray(imei_pseudo)) FROM `"+db+"`.detections").Scan(&pseudos))
	want := []string{imei(k2, "k2", moved), imei(k2, "k2", stays)}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	require.Equal(t, want, pseudos, "each phone under the pseudonym the new key gives its IMEI")
	d, r, p, e := counts()
	require.Equal(t, []uint64{2, 2, 2, 4}, []uint64{d, r, p, e}, "one device each in the rollups, every event kept")
	require.Contains(t, ruleTest(), "DEVICE_MULTI_SITE (medium) device "+imei(k2, "k2", moved)+"\n  facilities:  cd-b, ma-a\n")

	var ids, keys []string
	require.NoError(t, conn.QueryRow(ctx, "SELECT groupArray(alert_id), groupArray(group_key) FROM `"+db+"`.alerts").Scan(&ids, &keys))
	stay2 := imei(k2, "k2", stays)
	require.Equal(t, []string{event.AlertID("DEVICE_MULTI_SITE", stay2, created)}, ids)
	require.Equal(t, []string{stay2}, keys)
	var expl string
	require.NoError(t, conn.QueryRow(ctx, "SELECT explanation FROM `"+db+"`.alerts").Scan(&expl))
	require.Equal(t, "device "+stay2+" seen at 1 facilities", expl)

	// Run again: nothing left to map.
	code, out, errOut = run(t, "keys", "forward", "-key_file", keyFile, "-clickhouse.addrs="+chAddr, "-clickhouse.database="+db)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Contains(t, out, "nothing to map")
}
