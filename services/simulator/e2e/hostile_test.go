package e2e

// Hostile event times at ingest's door, with the correlator running (issue #13 items 3, 4, 6).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// hostile is an observed_at ingest must refuse, with the code it must answer.
type hostile struct {
	at   time.Time
	code string
}

func hostileTimes(now time.Time) []hostile {
	return []hostile{
		{time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC), "observed_at_in_future"},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "observed_at_in_future"},
		{now.Add(10 * time.Minute), "observed_at_in_future"},
		{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), "observed_at_beyond_retention"},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "observed_at_beyond_retention"},
		{now.AddDate(0, 0, -91), "observed_at_beyond_retention"},
	}
}

// (e) Events with hostile times among the normal ones of the planted scenarios, the
// correlator running: ingest refuses each with its code (422), none is counted accepted or
// found downstream, the normal ones are counted as without them, the planted scenarios raise
// their alerts (the alert check of TestPipelineEndToEnd) and no scheduled rule's watermark
// is beyond now plus the allowed skew. This is the one fault test with the correlator.
func TestFaultHostileTimes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newPipeline(t, testenv.KafkaBrokers(t), "fe")
	p.startServices("ingest", "enricher", "writer", "correlator")

	// The planted scenarios of TestPipelineEndToEnd, whose rules fire within a test's time.
	opt := traffic.DefaultOptions()
	opt.Seed, opt.Days, opt.Scale, opt.SupplierPhones, opt.InvalidRatio = 11, 14, 0.01, 400, 0
	opt.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -opt.Days)
	opt.Scenarios = []string{traffic.ScenarioPrisonBreak, traffic.ScenarioTransfer, traffic.ScenarioClonedIMEI}
	opt.RunID = "h-" + traffic.Letters(rand.Uint64()>>20)
	events, truth := generate(t, opt)

	// Hostile copies of normal events of several sensors: half of them each alone in a
	// request (answered 422), half among the normal events of their sensor's batches
	// (refused one by one in a 200), sent while the normal stream flows.
	now := time.Now().UTC()
	var alone []event.Detector
	var absent []ident
	codes := map[ident]string{}
	mixedAt := map[int]event.Detector{} // index in events -> hostile event sent after it
	for i, h := range hostileTimes(now) {
		for j := range 4 {
			at := (i*4 + j + 1) * len(events) / 26
			e := events[at]
			e.EventID = fmt.Sprintf("%s-hx-%s", opt.RunID, traffic.Letters(uint64(i*4+j)))
			e.ObservedAt = event.NewTime(h.at)
			absent = append(absent, identOf(&e))
			codes[identOf(&e)] = h.code
			if j%2 == 0 {
				alone = append(alone, e)
			} else {
				mixedAt[at] = e
			}
		}
	}
	stream := make([]event.Detector, 0, len(events)+len(mixedAt))
	for i, e := range events {
		stream = append(stream, e)
		if h, ok := mixedAt[i]; ok {
			stream = append(stream, h)
		}
	}
	tr := newTracker(p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Batches by sensor within windows of about an hour of event time (50 events at
		// this scale), so that the stream stays in event-time order within the streaming
		// rules' horizon (IMPOSSIBLE_TRAVEL: its 1 h window plus the clock's 1 h lateness):
		// with windows of 10,000 events a sensor's days came after others' and the cloned
		// IMEI's second sighting was dropped as late, when the sensors came in that order.
		tr.send(ctx, t, stream, sendOptions{Workers: 4, Batch: 200, Window: 50, Retry: true})
	}()
	waitAcked(t, tr, done, len(events)/4)
	for i := range alone {
		status, body := tr.postAlone(ctx, &alone[i])
		p.logf("observed_at %s alone: %d %s", alone[i].ObservedAt, status, strings.TrimSpace(string(body)))
		require.Equal(t, http.StatusUnprocessableEntity, status, "observed_at %s", alone[i].ObservedAt)
		var a ingestAnswer
		require.NoError(t, json.Unmarshal(body, &a))
		require.Equal(t, codes[identOf(&alone[i])], a.Code, "observed_at %s", alone[i].ObservedAt)
		require.Zero(t, a.Accepted+a.Duplicates, "observed_at %s counted as accepted", alone[i].ObservedAt)
	}
	<-done
	for _, id := range absent {
		assert.False(t, tr.acked[id], "hostile %s acknowledged", id.event)
		assert.Equal(t, codes[id], tr.rejected[id], "the code of hostile %s", id.event)
	}
	require.Len(t, tr.ackedSet(), len(events), "every normal event acknowledged: %s", tr)
	require.EqualValues(t, len(events), tr.accepted, "accepted = the normal events: %s", tr)

	// The alerts of the planted scenarios, before checkCounted stops the services.
	rp := p.open(ctx)
	p.waitDrained(ctx, rp, tr.ackedSet(), 6*time.Minute)
	checkPlantedAlerts(ctx, t, rp, truth)
	marks, err := rp.Watermarks(ctx)
	require.NoError(t, err)
	for rule, m := range marks {
		require.False(t, m.After(time.Now().Add(5*time.Minute)), "rule %s watermark %s is in the future", rule, m)
	}
	p.logf("watermarks: %v", marks)
	p.checkCounted(ctx, tr, absent)
}

// checkPlantedAlerts waits for an alert of every planted finding whose rule has the history
// it needs in the period (Truth.Expected: a rule warming up must not speak) and returns the
// alerts.
func checkPlantedAlerts(ctx context.Context, t *testing.T, rp *report.Pipeline, truth traffic.Truth) []report.Alert {
	t.Helper()
	expected := truth.Expected()
	require.NotEmpty(t, expected, "no planted finding is due in the period")
	var got []report.Alert
	require.Eventually(t, func() bool {
		var err error
		if got, err = rp.Alerts(ctx, truth.Start, truth.End.Add(time.Hour)); err != nil {
			return false
		}
		for _, f := range expected {
			found := false
			for _, a := range got {
				found = found || report.Matches(a, f.Rule, f.Facilities, f.TACs)
			}
			if !found {
				t.Logf("no %s alert yet for %s; alerts so far: %v", f.Rule, f.Scenario, report.RuleCounts(got))
				return false
			}
		}
		return true
	}, 3*time.Minute, 2*time.Second, "planted scenarios without their alert")
	t.Logf("alerts per rule: %v", report.RuleCounts(got))
	return got
}

// postAlone posts one event in a request of its own, once, records the answer and returns it.
func (tr *tracker) postAlone(ctx context.Context, e *event.Detector) (int, []byte) {
	if tr.hook != nil {
		tr.hook(e)
	}
	data, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	status, body, _ := tr.try(ctx, e.SensorID, append(data, '\n'))
	tr.mu.Lock()
	tr.statuses[status]++
	tr.mu.Unlock()
	switch {
	case status == http.StatusOK:
		tr.record200([]event.Detector{*e}, body)
	case status >= 400 && status < 500:
		tr.record4xx([]event.Detector{*e}, status, body)
	}
	return status, body
}
