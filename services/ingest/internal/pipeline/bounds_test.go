package pipeline_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/ingest/internal/batch"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

func TestTimeBounds(t *testing.T) {
	p := newPipeline(t)
	at := func(d time.Duration) string { return event.NewTime(now.Add(d)).String() }
	const day = 24 * time.Hour
	for _, tc := range []struct {
		observedAt string
		code       string // "" = accepted
		bound      string
	}{
		{at(0), "", ""},
		{at(5 * time.Minute), "", ""}, // the bound itself
		{at(-90 * day), "", ""},
		{at(-90*day + 15*time.Minute), "", ""}, // now − 89.99 days
		{at(5*time.Minute + time.Millisecond), pipeline.CodeObservedAtInFuture, "2026-11-25T09:21:42.000Z, the time of receipt plus clock_skew (5m0s)"},
		{at(10 * time.Minute), pipeline.CodeObservedAtInFuture, "clock_skew (5m0s)"},
		{"2099-01-01T00:00:00.000Z", pipeline.CodeObservedAtInFuture, "2026-11-25T09:21:42.000Z"},
		{"9999-12-31T23:59:59.999Z", pipeline.CodeObservedAtInFuture, "2026-11-25T09:21:42.000Z"},
		{at(-90*day - time.Millisecond), pipeline.CodeObservedAtBeyondRetention, "2026-08-27T09:16:42.000Z, the time of receipt minus retention (90 days (2160h0m0s))"},
		{at(-91 * day), pipeline.CodeObservedAtBeyondRetention, "retention (90 days"},
		{"1900-01-01T00:00:00.000Z", pipeline.CodeObservedAtBeyondRetention, "2026-08-27T09:16:42.000Z"},
		{"0001-01-01T00:00:00.000Z", pipeline.CodeObservedAtBeyondRetention, "2026-08-27T09:16:42.000Z"},
		{"0000-01-01T00:00:00.000Z", pipeline.CodeObservedAtBeyondRetention, ""},
	} {
		// The fast path (a call attempt) and the schema's path (a drone) decide alike.
		for _, data := range [][]byte{
			with(map[string]any{"observed_at": tc.observedAt}),
			[]byte(`{"event_id":"d-1","sensor_id":"` + sensor + `","observed_at":"` + tc.observedAt + `","kind":"drone_seen","drone":{"detection_source":"radar","lat":43.5,"lon":5.4}}`),
		} {
			o := p.Process(batch.Item{Data: data}, sensor, now)
			if tc.code == "" {
				require.True(t, o.Accepted, "%s: %+v", tc.observedAt, o.Errors)
				continue
			}
			require.False(t, o.Accepted, tc.observedAt)
			require.Equal(t, tc.code, o.Code, tc.observedAt)
			require.Len(t, o.Errors, 1)
			require.Equal(t, "/observed_at", o.Errors[0].Pointer)
			require.Contains(t, o.Errors[0].Reason, tc.bound)
			require.Contains(t, o.Errors[0].Reason, tc.observedAt)
			require.Nil(t, o.Raw)
			var rec event.DLQ
			require.NoError(t, json.Unmarshal(o.DLQ, &rec))
			require.Equal(t, tc.code, rec.Reason)
			require.Equal(t, []event.FieldError{{Pointer: "/observed_at", Reason: tc.code}}, rec.Errors)
			require.Equal(t, len(data), rec.Body.Bytes, "the body is known by its size")
			require.Len(t, rec.Body.HMAC, 32, "and its keyed hash")
			require.NotContains(t, string(o.DLQ), tc.observedAt, "no value of the event")
			require.NotContains(t, string(o.DLQ), "358288021042170")
		}
	}
}
