package sched_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/retry"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/chtest"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/sched"
)

// benchFill populates db with the volume of 190 facilities: 30 days of per-minute
// rollups (calls and SMS in every minute), 60 days of TAC and serial-block rollups (200
// models, 3 blocks each, at every facility; and the national serial-block rollup), 30 days
// of device presence (50 devices per facility) and 7 days of raw detections (50 devices x
// 20 attempts a day per facility, a drone per facility a day). The rollups are written
// directly, not through the raw table; so is facility_coverage: every facility reports
// since 200 days, so that the rules' claims are not held back by their need for history.
func benchFill(ctx context.Context, b *testing.B, exec func(string) error, db string, end time.Time) {
	day := end.Truncate(24 * time.Hour)
	ts := func(t time.Time) string { return "toDateTime('" + t.UTC().Format("2006-01-02 15:04:05") + "', 'UTC')" }
	stmts := []string{
		fmt.Sprintf(`INSERT INTO %[1]s.detections_per_minute SELECT concat('f', toString(number %% 190)) AS facility_id,
			%[2]s - toIntervalMinute(intDiv(number, 380)) AS minute, if(intDiv(number, 190) %% 2 = 0, 'call_attempt', 'sms_attempt'),
			1 + (cityHash64(number) %% 4), arrayReduce('uniqState', [toString(number %% 9000)]) FROM numbers(%[3]d)`, db, ts(end), 30*1440*380),
		fmt.Sprintf(`INSERT INTO %[1]s.tac_per_day SELECT toString(86000000 + number %% 200) AS tac, concat('f', toString(intDiv(number, 200) %% 190)),
			toDate(%[2]s) - intDiv(number, 38000), 20, arrayReduce('uniqState', [toString(number %% 50), toString(number %% 7)]),
			%[2]s - toIntervalDay(intDiv(number, 38000)), %[2]s - toIntervalDay(intDiv(number, 38000)) + toIntervalHour(20) FROM numbers(%[3]d)`, db, ts(day), 60*38000),
		fmt.Sprintf(`INSERT INTO %[1]s.serial_block_per_day SELECT toString(86000000 + number %% 200), toString(100 + intDiv(number, 200) %% 3),
			concat('f', toString(intDiv(number, 600) %% 190)), toDate(%[2]s) - intDiv(number, 114000), 7, arrayReduce('uniqState', [toString(number %% 31)]),
			%[2]s - toIntervalDay(intDiv(number, 114000)), %[2]s - toIntervalDay(intDiv(number, 114000)) + toIntervalHour(20) FROM numbers(%[3]d)`, db, ts(day), 60*114000),
		// The national rollup holds the same rows one level up, as the backfill of 0006 makes it.
		fmt.Sprintf(`INSERT INTO %[1]s.serial_block_national_per_day SELECT tac, serial_block, day, sum(events), uniqMergeState(devices),
			groupUniqArray(toString(facility_id)), min(first_seen), max(last_seen) FROM %[1]s.serial_block_per_day GROUP BY tac, serial_block, day`, db),
		fmt.Sprintf(`INSERT INTO %[1]s.device_presence_per_day SELECT concat('f', toString(number %% 190)), toDate(%[2]s) - intDiv(number, 9500),
			concat('dev', toString(intDiv(number, 190) %% 50), '-', toString(number %% 190)), false, '86000001', 20,
			%[2]s - toIntervalDay(intDiv(number, 9500)), %[2]s - toIntervalDay(intDiv(number, 9500)) + toIntervalHour(20) FROM numbers(%[3]d)`, db, ts(day), 30*9500),
		fmt.Sprintf(`INSERT INTO %[1]s.detections (event_id, sensor_id, kind, observed_at, received_at, enriched_at, facility_id, imei_pseudo, imsi_pseudo, tac, serial_block, kafka_topic, kafka_partition, kafka_offset)
			SELECT concat('e', toString(number)), 's', if(number %% 1000 = 0, 'drone_seen', 'mas_attach'), %[2]s - toIntervalSecond(number %% 604800),
			now64(3), now64(3), concat('f', toString(number %% 190)),
			if(number %% 1000 = 0, '', concat('dev', toString(intDiv(number, 190) %% 50), '-', toString(number %% 190))),
			if(number %% 1000 = 0, '', concat('sim', toString(intDiv(number, 190) %% 50), '-', toString(number %% 190))),
			'86000001', '100', 'bench', 0, number FROM numbers(%[3]d)`, db, ts(end), 7*190*50*20),
		fmt.Sprintf(`INSERT INTO %[1]s.facility_coverage SELECT concat('f', toString(number)), %[2]s - toIntervalDay(200), %[2]s FROM numbers(190)`, db, ts(end)),
	}
	for _, s := range stmts {
		start := time.Now()
		require.NoError(b, exec(s))
		b.Logf("filled in %s: %.80s", time.Since(start), s)
	}
}

// BenchmarkScheduledRules times one evaluation of each scheduled rule over 190 facilities:
// go test -run=^$ -bench=BenchmarkScheduledRules -benchtime=3x ./internal/sched/
func BenchmarkScheduledRules(b *testing.B) {
	conn, db := chtest.New(b)
	ctx := context.Background()
	end := time.Now().UTC().Truncate(24 * time.Hour)
	benchFill(ctx, b, func(q string) error {
		return retry.Do(ctx, retry.Default(), func(ctx context.Context) error { return conn.Exec(ctx, q) }, nil)
	}, "`"+db+"`", end)
	rs, err := rules.LoadDefault()
	require.NoError(b, err)
	s := sched.New(sched.DefaultConfig(), conn, db, rs, &alert.Memory{}, zap.NewNop(), prometheus.NewRegistry())
	for _, r := range s.Rules() {
		b.Run(r.ID, func(b *testing.B) {
			var out []alert.Alert
			for range b.N {
				var err error
				require.NoError(b, retry.Do(ctx, retry.Default(), func(ctx context.Context) error {
					out, err = s.Evaluate(ctx, r, end)
					return err
				}, nil))
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/evaluation")
			b.ReportMetric(float64(len(out)), "findings")
		})
	}
}

// BenchmarkCatchUp times a scheduler catching up with a long replay (the planted scenarios
// on 35 days at 12 facilities; 5 days of steps, from an empty watermark), stepping every
// window vs skipping the steps the pre-checks rule out:
// go test -run=^$ -bench=BenchmarkCatchUp -benchtime=1x ./internal/sched/
func BenchmarkCatchUp(b *testing.B) {
	for _, skip := range []bool{false, true} {
		name := "every_window"
		if skip {
			name = "skipping"
		}
		b.Run(name, func(b *testing.B) {
			es, _, _ := plantScheduled(b, true)
			cfg := sched.DefaultConfig()
			cfg.Backfill = 5 * 24 * time.Hour
			cfg.MaxStepsPerTick = 4
			for range b.N {
				b.StopTimer()
				run := newCatchUpRun(b, es, cfg, skip)
				b.StartTimer()
				ticks := run.untilCaughtUp(b)
				b.ReportMetric(float64(len(run.steps)), "evaluations")
				b.ReportMetric(float64(ticks), "ticks")
				b.ReportMetric(float64(len(run.sink.Alerts)), "alerts")
			}
		})
	}
}
