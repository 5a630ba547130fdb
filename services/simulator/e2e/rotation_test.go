package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/testenv"
	refdata "github.com/vigie/vigie/schemas/reference"
)

// TestKeyRotationOneDevice rotates the pseudonym key in the middle of a running pipeline,
// as the procedure of services/vigiectl/README.md says: phones seen at one facility under
// the first key are seen at another under the second. After `vigiectl keys rotate`, an
// ingest restart, `vigiectl keys forward` (writer and correlator stopped) and their restart,
// the live correlator raises DEVICE_MULTI_SITE for every phone that moved, under the
// pseudonym the new key gives its IMEI, and for none that stayed: each phone is one device
// across the change (its events on one partition, its history mapped), every row is under
// the new version, and no clear identifier is anywhere.
func TestKeyRotationOneDevice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	p := newPipeline(t, testenv.KafkaBrokers(t), "rot")
	p.startServices("ingest", "enricher", "writer", "correlator")

	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	var a, b *reference.Sensor
	for _, s := range ref.Sensors() {
		if s.Type != reference.SensorMAS {
			continue
		}
		switch {
		case a == nil:
			a = s
		case s.FacilityID != a.FacilityID:
			b = s
		}
		if b != nil {
			break
		}
	}
	require.NotNil(t, b)

	const moved, stayed = 120, 30
	run := fmt.Sprintf("rot-%x", rand.Uint32())
	imei := func(i int) string { return fmt.Sprintf("35828802%06d", 500000+i) }
	mas := func(s *reference.Sensor, i, step int, at time.Time) event.Detector {
		return event.Detector{Common: event.Common{EventID: fmt.Sprintf("%s-%d-%d", run, step, i), SensorID: s.ID,
			ObservedAt: event.NewTime(at), Kind: event.KindMASAttach, Zone: s.Zone, RAT: event.RAT4G},
			IMEI: imei(i), IMSI: fmt.Sprintf("20815%010d", 500000+i)}
	}
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Millisecond)
	var before, after []event.Detector
	for i := range moved + stayed {
		before = append(before, mas(a, i, 0, t0.Add(time.Duration(i)*time.Second)))
		to := b
		if i >= moved {
			to = a
		}
		after = append(after, mas(to, i, 1, t0.Add(time.Hour+time.Duration(i)*time.Second)))
	}

	tr := newTracker(p)
	rp := p.open(ctx)
	tr.send(ctx, t, before, sendOptions{Workers: 2, Batch: 50, Retry: true})
	p.waitDrained(ctx, rp, tr.ackedSet(), 2*time.Minute)
	p.logf("%d events under the first key written", len(before))

	// Rotate: a new version, active from ingest's restart on.
	p.procs["ingest"].stop(t)
	require.NoError(t, runCmd(t, p.vigiectl(), "keys", "rotate", "-key_file", p.keyPath, "-version", "e2e2"))
	p.startServices("ingest")
	// The writer has written everything (drained): stop it and the correlator, map.
	p.procs["writer"].stop(t)
	p.procs["correlator"].stop(t)
	forward := []string{"keys", "forward", "-key_file", p.keyPath, "-clickhouse.addrs=" + p.chAddr, "-clickhouse.database=" + p.db}
	for _, kv := range p.clickhouseSettings() {
		forward = append(forward, "-"+kv[0]+"="+kv[1])
	}
	require.NoError(t, runCmd(t, p.vigiectl(), forward...))
	p.startServices("writer", "correlator")
	p.logf("rotated and mapped")

	tr.send(ctx, t, after, sendOptions{Workers: 2, Batch: 50, Retry: true})
	p.waitDrained(ctx, rp, tr.ackedSet(), 2*time.Minute)
	p.logf("%d events under the second key written", len(after))

	keys, err := pseudonym.LoadFile(p.keyPath)
	require.NoError(t, err)
	require.Equal(t, "e2e2", keys.Active().KeyVersion())
	var want []string
	for i := range moved {
		r, err := keys.Active().IMEI(imei(i))
		require.NoError(t, err)
		want = append(want, r.Pseudo)
	}
	slices.Sort(want)
	var got []string
	require.Eventually(t, func() bool {
		rows, err := rp.Conn.Query(ctx, "SELECT group_key FROM `"+p.db+"`.alerts FINAL WHERE rule = 'DEVICE_MULTI_SITE' ORDER BY group_key")
		if err != nil {
			return false
		}
		defer rows.Close()
		got = got[:0]
		for rows.Next() {
			var k string
			if rows.Scan(&k) == nil {
				got = append(got, k)
			}
		}
		return len(got) >= moved
	}, 90*time.Second, time.Second, "DEVICE_MULTI_SITE for each phone that moved")
	time.Sleep(3 * time.Second) // nothing more comes
	require.NoError(t, rp.Conn.QueryRow(ctx, "SELECT groupArraySorted(1000)(group_key) FROM `"+p.db+"`.alerts FINAL WHERE rule = 'DEVICE_MULTI_SITE'").Scan(&got))
	require.Equal(t, want, got, "one finding per phone that moved, under its new pseudonym; none for those that stayed")

	var versions []string
	var devices uint64
	require.NoError(t, rp.Conn.QueryRow(ctx, "SELECT groupUniqArray(key_version), uniqExact(imei_pseudo) FROM `"+p.db+"`.detections").Scan(&versions, &devices))
	require.Equal(t, []string{"e2e2"}, versions)
	require.EqualValues(t, moved+stayed, devices, "one device per phone across the rotation")
	p.checkLeaks(ctx, rp)
}
