package sched_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// world is a scheduler over events written to a database of its own, for tests that build
// their data by hand.
type world struct {
	t     *testing.T
	g     *scenario.Gen
	es    []event.Enriched
	rules map[string]*rules.Rule
}

func newWorld(t *testing.T, seed uint64) *world {
	refs, err := scenario.DefaultReference()
	require.NoError(t, err)
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	w := &world{t: t, g: scenario.New(refs, seed, fmt.Sprintf("w%d", seed)), rules: map[string]*rules.Rule{}}
	for _, r := range rs {
		w.rules[r.ID] = r
	}
	return w
}

// feed makes facilities [from, from+n) report since t.
func (w *world) feed(from, n int, t time.Time) {
	for i := from; i < from+n; i++ {
		w.es = append(w.es, w.g.FeedStart(w.g.Facility(i), t))
	}
}

// seen adds a device of tac (in block, when not empty) at facility i, seen at each of ts.
func (w *world) seen(tac, block string, i int, ts ...time.Time) scenario.Device {
	d := w.g.NewDevice(tac)
	if block != "" {
		d = w.g.NewDeviceInBlock(tac, block)
	}
	for _, t := range ts {
		w.es = append(w.es, w.g.Radio(event.KindMASAttach, d, w.g.Facility(i), t))
	}
	return d
}

func (w *world) facilityIDs(idx ...int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = w.g.Facility(x).ID
	}
	slices.Sort(out)
	return out
}

func span(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// run writes the events and returns a scheduler over them.
func (w *world) run() (*sched.Scheduler, context.Context) {
	conn, db := chtest.New(w.t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	w.t.Cleanup(cancel)
	scenario.SortByTime(w.es)
	require.NoError(w.t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
		return scenario.InsertDetections(ctx, conn, db, w.es, nil)
	}, nil))
	var rs []*rules.Rule
	for _, r := range w.rules {
		rs = append(rs, r)
	}
	s := sched.New(sched.DefaultConfig(), conn, db, rs, &alert.Memory{}, zaptest.NewLogger(w.t), prometheus.NewRegistry())
	return s, ctx
}

// findings evaluates rule id at end (its queries, evidence included), by group key.
func findings(t *testing.T, ctx context.Context, s *sched.Scheduler, r *rules.Rule, end time.Time) map[string]sched.Finding {
	var fs []sched.Finding
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
		var err error
		fs, err = s.Findings(ctx, r, end)
		return err
	}, nil))
	out := map[string]sched.Finding{}
	for _, f := range fs {
		out[f.Key] = f
	}
	return out
}

// every returns the times from t every step, n of them.
func every(t time.Time, step time.Duration, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = t.Add(time.Duration(i) * step)
	}
	return out
}

// TAC_SPREAD learns what is usual: a model at 40 facilities that reaches 8 more in a week
// (on 16 devices: above the rule's counts) stays quiet, as do models just under each bar;
// a rare model jumping to 6 new facilities is found, with those 6 facilities and their
// events as evidence, and a model whose footprint is exactly matched by its new facilities
// is found too. Facilities that joined the feed within the rule's need claim nothing.
func TestTACSpreadGrowth(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 21)
	day := rules.Day
	end := time.Now().UTC().Truncate(day).Add(-2 * day)
	win := end.Add(-7 * day)   // the window: [win, end)
	base := win.Add(-21 * day) // the baseline: [base, win)
	w.feed(0, 60, end.Add(-60*day))
	w.feed(60, 8, end.Add(-20*day)) // facilities 60-67 joined the feed 20 days ago: not covered (28 days)

	// Popular: 3 residents at each of facilities 0-39 seen every 3 days through baseline and
	// window, then 2 new devices at each of 8 new facilities (40-47) during the window.
	for i := 0; i < 40; i++ {
		for k := 0; k < 3; k++ {
			w.seen("35300001", "", i, every(base.Add(time.Duration(k)*time.Hour), 3*day, 10)...)
		}
	}
	for i := 40; i < 48; i++ {
		w.seen("35300001", "", i, win.Add(time.Duration(i-39)*12*time.Hour))
		w.seen("35300001", "", i, win.Add(time.Duration(i-39)*12*time.Hour+time.Hour))
	}
	// newAt plants devices of tac at facilities fs during the window, n devices in all.
	newAt := func(tac string, fs []int, n int) {
		for k := 0; k < n; k++ {
			w.seen(tac, "", fs[k%len(fs)], win.Add(time.Duration(k)*10*time.Hour))
		}
	}
	// The rare model (a mini phone of the reference): one resident at facility 0 during the
	// baseline, then 12 devices at 6 new facilities.
	w.seen("86741801", "", 0, every(base, 2*day, 5)...)
	newAt("86741801", span(10, 6), 12)
	// Decoys, each just under one bar.
	newAt("35300003", span(20, 4), 12) // 4 new facilities
	newAt("35300004", span(30, 5), 9)  // 9 devices
	for i := 0; i < 6; i++ {           // footprint 6, 5 new: under growth 1
		w.seen("35300005", "", 50+i, base.Add(time.Duration(i)*day))
	}
	newAt("35300005", span(1, 5), 10)
	// At the bar: footprint 5, 5 new facilities on 10 devices.
	for i := 0; i < 5; i++ {
		w.seen("35300006", "", 50+i, base.Add(time.Duration(i)*day))
	}
	newAt("35300006", span(1, 5), 10)
	// New facilities of the feed: every model they hold is new to them; none counts.
	newAt("35300007", span(60, 8), 16)
	for i := 60; i < 68; i++ {
		w.seen("35300001", "", i, win.Add(time.Duration(i)*time.Hour))
	}
	// Just outside the baseline: seen 22 days before the window, at the 6 facilities it
	// then reaches again: new facilities again.
	for i := 0; i < 6; i++ {
		w.seen("35300008", "", 40+i, base.Add(-day))
	}
	newAt("35300008", span(40, 6), 12)

	s, ctx := w.run()
	got := findings(t, ctx, s, w.rules["TAC_SPREAD"], end)
	keys := map[string][]string{}
	for k, f := range got {
		keys[k] = f.Facilities
		require.NotEmpty(t, f.Evidence, k)
		require.Len(t, f.Distinct, 2)
	}
	require.Equal(t, map[string][]string{
		"86741801": w.facilityIDs(span(10, 6)...),
		"35300006": w.facilityIDs(span(1, 5)...),
		"35300008": w.facilityIDs(span(40, 6)...),
	}, keys)
	require.Equal(t, []uint64{6, 12}, got["86741801"].Distinct)
	require.Equal(t, uint64(12), got["86741801"].N, "only the new facilities' events count")
	require.Len(t, got["86741801"].Evidence, 12, "evidence: the 12 devices at the new facilities, not the resident")
	require.Equal(t, []uint64{5, 10}, got["35300006"].Distinct)
	// The explanation names the model from the reference and the footprint it grew from.
	var explained string
	for _, a := range evaluateAlerts(t, ctx, s, w.rules["TAC_SPREAD"], end) {
		if a.GroupKey == "86741801" {
			explained = a.Explanation
		}
	}
	require.Equal(t, "TAC 86741801 (GTStar BM50, mini-phone candidate) seen at 6 facilities new to it, on 12 devices, within 7d; in the 21d before it had been seen at 1", explained)
}

// BATCH_RANGE compares a serial block's new facilities with its model's own footprint: a
// fresh retail batch of a popular model reaching 4 new facilities stays quiet, a shipment of
// a rare model reaching 3 is found, and batches just under a bar stay quiet.
func TestBatchRangeGrowth(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 22)
	day := rules.Day
	end := time.Now().UTC().Truncate(day).Add(-2 * day)
	win := end.Add(-14 * day)
	base := win.Add(-28 * day)
	w.feed(0, 50, end.Add(-60*day))
	// block plants n devices of tac from block at facilities fs during the window.
	block := func(tac, blk string, fs []int, n int) {
		for k := 0; k < n; k++ {
			w.seen(tac, blk, fs[k%len(fs)], win.Add(time.Duration(k)*day))
		}
	}
	// A popular model at 40 facilities during the baseline (blocks 100-139), then a fresh
	// block at 4 facilities new to it (which already hold the model).
	for i := 0; i < 40; i++ {
		w.seen("35400001", fmt.Sprint(100+i), i, every(base.Add(time.Duration(i)*time.Hour), 4*day, 10)...)
	}
	block("35400001", "777", span(0, 4), 6)
	// A rare model, at one facility during the baseline; a block of it at 3 new facilities.
	w.seen("35400002", "100", 45, base.Add(day))
	block("35400002", "512", span(10, 3), 5)
	// Decoys: 4 devices only; a model whose footprint (4 facilities) exceeds the 3 new ones.
	block("35400003", "512", span(20, 3), 4)
	for i := 0; i < 4; i++ {
		w.seen("35400004", "300", 41+i, base.Add(time.Duration(i)*day))
	}
	block("35400004", "512", span(30, 3), 5)

	s, ctx := w.run()
	got := findings(t, ctx, s, w.rules["BATCH_RANGE"], end)
	keys := map[string][]string{}
	for k, f := range got {
		keys[k] = f.Facilities
		require.NotEmpty(t, f.Evidence, k)
	}
	require.Equal(t, map[string][]string{"tac=35400002,serial_block=512": w.facilityIDs(span(10, 3)...)}, keys)
	require.Equal(t, []uint64{5, 3}, got["tac=35400002,serial_block=512"].Distinct)
}

// No claim without history: each rule that needs history raises nothing while the data
// covers less than it needs (by one step) and raises its finding once it covers it.
func TestNoClaimWithoutHistory(t *testing.T) {
	t.Parallel()
	day := rules.Day
	end := time.Now().UTC().Truncate(day).Add(-2 * day)
	for _, c := range []struct {
		rule  string
		need  time.Duration
		short time.Duration // how much less than the need the short feed covers
		plant func(w *world, fs []int) string
		at    time.Time
	}{
		{"TAC_SPREAD", 28 * day, time.Millisecond, func(w *world, fs []int) string {
			for k := 0; k < 12; k++ {
				w.seen("35500001", "", fs[k%6], end.Add(-6*day+time.Duration(k)*10*time.Hour))
			}
			return "35500001"
		}, end},
		{"BATCH_RANGE", 42 * day, time.Millisecond, func(w *world, fs []int) string {
			for k := 0; k < 5; k++ {
				w.seen("35500002", "512", fs[k%3], end.Add(-6*day+time.Duration(k)*day))
			}
			return "tac=35500002,serial_block=512"
		}, end},
		{"NEW_TAC_NATIONAL", 187 * day, time.Millisecond, func(w *world, fs []int) string {
			w.seen("35500003", "", fs[0], end.Add(-3*day))
			w.seen("35500003", "", fs[1], end.Add(-2*day))
			return "35500003"
		}, end},
		// The scheduled step of SYNC_BURST ends at bucket end; of DRONE_THEN_NEW_DEVICE 10
		// minutes after the last new device.
		{"SYNC_BURST", 28 * day, time.Millisecond, func(w *world, fs []int) string {
			for _, i := range fs[:5] {
				for k := 0; k < 12; k++ {
					d := w.g.NewDevice(scenario.CommonTACs[0])
					w.es = append(w.es, w.g.Radio(event.KindCallAttempt, d, w.g.Facility(i), end.Add(-10*time.Minute+time.Duration(k)*30*time.Second)))
				}
			}
			return sched.NationalKey
		}, end},
		{"DRONE_THEN_NEW_DEVICE", 30 * day, time.Millisecond, func(w *world, fs []int) string {
			w.es = append(w.es, w.g.Drone(w.g.Facility(fs[0]), end.Add(-3*time.Hour)))
			w.seen(scenario.CommonTACs[0], "", fs[0], end.Add(-2*time.Hour))
			w.seen(scenario.CommonTACs[1], "", fs[0], end.Add(-time.Hour))
			return w.g.Facility(fs[0]).ID
		}, end.Add(-50 * time.Minute)},
	} {
		t.Run(c.rule, func(t *testing.T) {
			t.Parallel()
			for _, covered := range []bool{false, true} {
				w := newWorld(t, 23)
				r := w.rules[c.rule]
				need, _ := r.Needs()
				require.Equal(t, c.need, need)
				since := c.at.Add(-need)
				if !covered {
					since = since.Add(c.short)
				}
				fs := span(0, 6)
				w.feed(0, 6, since)
				key := c.plant(w, fs)
				s, ctx := w.run()
				var got []string
				switch r.Type {
				case rules.ValueCount, rules.NewTerm:
					for k := range findings(t, ctx, s, r, c.at) {
						got = append(got, k)
					}
				default:
					got = evaluate(t, ctx, s, r, c.at)
				}
				if covered {
					require.Equal(t, []string{key}, got, "the feed covers %s", rules.FormatDuration(need))
				} else {
					require.Empty(t, got, "the feed covers %s less than %s", c.short, rules.FormatDuration(need))
				}
			}
		})
	}
}

// evaluateAlerts runs rule r's step ending at end and returns the alerts it raises.
func evaluateAlerts(t *testing.T, ctx context.Context, s *sched.Scheduler, r *rules.Rule, end time.Time) []alert.Alert {
	var as []alert.Alert
	require.NoError(t, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
		var err error
		as, err = s.Evaluate(ctx, r, end)
		return err
	}, nil))
	return as
}

// evaluate runs rule r's step ending at end and returns the group keys it raises.
func evaluate(t *testing.T, ctx context.Context, s *sched.Scheduler, r *rules.Rule, end time.Time) []string {
	as := evaluateAlerts(t, ctx, s, r, end)
	var keys []string
	for _, a := range as {
		keys = append(keys, a.GroupKey)
	}
	slices.Sort(keys)
	return keys
}

// DRONE_THEN_NEW_DEVICE counts new devices where inmates live, more than the facility
// usually gets: one new device, or new devices in the visiting room, or as many as a busy
// facility gets every 6 hours, stay quiet; two new devices in cells of a quiet facility, and
// seven at the busy one, are found.
func TestDroneThenNewDevicesAboveUsual(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 24)
	day := rules.Day
	end := time.Now().UTC().Truncate(day).Add(-2 * day).Add(18 * time.Hour) // a step end
	drone := end.Add(-4 * time.Hour)
	w.feed(0, 8, end.Add(-40*day))
	newDevices := func(i, n int, zoneType string) {
		for k := 0; k < n; k++ {
			d := w.g.NewDevice(scenario.CommonTACs[k%4])
			e := w.g.Radio(event.KindMASAttach, d, w.g.Facility(i), drone.Add(time.Hour+time.Duration(k)*time.Minute))
			e.ZoneType = zoneType
			w.es = append(w.es, e)
		}
	}
	for i := 0; i < 6; i++ {
		w.es = append(w.es, w.g.Drone(w.g.Facility(i), drone))
	}
	newDevices(0, 1, "cell_block")    // one: under min 2
	newDevices(1, 3, "visiting_room") // visitors
	newDevices(2, 2, "cell_block")    // found
	newDevices(3, 2, "yard")          // found
	// Facilities 4 and 5 get two new devices in cells every 6 hours during the 14 days
	// before the window (usual: 2 per 6 h, so more than 2 + 3·√2 = 6.2 stands out).
	for _, i := range []int{4, 5} {
		for k := 0; k < 14*4; k++ {
			for j := 0; j < 2; j++ {
				w.seen(scenario.CommonTACs[j], "", i, drone.Add(-6*time.Hour-time.Duration(k)*6*time.Hour))
			}
		}
	}
	newDevices(4, 6, "cell_block") // 6: usual
	newDevices(5, 7, "cell_block") // 7: above
	s, ctx := w.run()
	got := evaluate(t, ctx, s, w.rules["DRONE_THEN_NEW_DEVICE"], drone.Add(time.Hour+10*time.Minute))
	require.Equal(t, w.facilityIDs(2, 3, 5), got)
}

// SYNC_BURST needs five facilities above their own baseline, each covered for it: four
// bursting, or five of which one joined the feed 27 days ago, stay quiet.
func TestSyncBurstNeedsFiveCoveredFacilities(t *testing.T) {
	t.Parallel()
	day := rules.Day
	end := time.Now().UTC().Truncate(day).Add(-2 * day).Add(18 * time.Hour)
	burst := func(w *world, fs ...int) {
		for _, i := range fs {
			for k := 0; k < 12; k++ {
				d := w.g.NewDevice(scenario.CommonTACs[0])
				w.es = append(w.es, w.g.Radio(event.KindCallAttempt, d, w.g.Facility(i), end.Add(-10*time.Minute+time.Duration(k)*30*time.Second)))
			}
		}
	}
	for _, c := range []struct {
		name  string
		setup func(w *world)
		want  []string
	}{
		{"four facilities", func(w *world) { w.feed(0, 6, end.Add(-30*day)); burst(w, 0, 1, 2, 3) }, nil},
		{"one of five not covered", func(w *world) {
			w.feed(0, 4, end.Add(-30*day))
			w.feed(4, 1, end.Add(-27*day))
			burst(w, 0, 1, 2, 3, 4)
		}, nil},
		{"five covered", func(w *world) { w.feed(0, 5, end.Add(-30*day)); burst(w, 0, 1, 2, 3, 4) }, []string{sched.NationalKey}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, 25)
			c.setup(w)
			s, ctx := w.run()
			require.Equal(t, c.want, evaluate(t, ctx, s, w.rules["SYNC_BURST"], end))
		})
	}
}
