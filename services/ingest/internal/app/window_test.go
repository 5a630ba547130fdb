package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/schemas/events"
	"github.com/vigie/vigie/services/ingest/internal/app"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
)

// otherContent is ev with another observed_at: the same identity, other content.
func otherContent(t *testing.T, ev []byte) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(ev, &m))
	at, err := time.Parse(time.RFC3339Nano, m["observed_at"].(string))
	require.NoError(t, err)
	m["observed_at"] = event.NewTime(at.Add(time.Millisecond)).String()
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// rawByID reads the raw topic: the messages of each event_id.
func rawByID(t *testing.T, e *env) map[string][]event.Raw {
	out := map[string][]event.Raw{}
	for _, m := range readAll(t, e.brokers, e.cfg.Topics.Raw) {
		var r event.Raw
		require.NoError(t, json.Unmarshal(m.Value, &r))
		out[r.EventID] = append(out[r.EventID], r)
	}
	return out
}

func TestConflictRefusedFirstVersionStays(t *testing.T) {
	e := start(t, nil)
	evs, ids := makeEvents(t, sensorA, "conflict", 4)
	first := e.post(sensorA, ndjson(evs[:1]), nil)
	require.Equal(t, http.StatusOK, first.code, first.raw)

	// Alone, the conflicting version is answered 409, naming the event and the sensor.
	second := otherContent(t, evs[0])
	r := e.post(sensorA, ndjson([][]byte{second}), nil)
	require.Equal(t, http.StatusConflict, r.code, r.raw)
	require.Equal(t, pipeline.CodeEventIDConflict, r.body.Code)
	require.Contains(t, r.body.Error, ids[0])
	require.Contains(t, r.body.Error, sensorA)
	require.Equal(t, 1, r.body.Rejected)
	require.Equal(t, pipeline.CodeEventIDConflict, r.body.Errors[0].Code)
	require.Equal(t, "/event_id", r.body.Errors[0].Errors[0].Pointer)
	requireMatchesOpenAPI(t, openAPISchema(t, "BatchResult"), r.raw)

	// The true resend is a duplicate, not an error.
	r = e.post(sensorA, ndjson(evs[:1]), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, counts(0, 1, 0), [3]int{r.body.Accepted, r.body.Duplicates, r.body.Rejected})

	// In a batch with new events: 200, the conflict listed, the others stored; a conflict
	// inside one request too (the first of the two stays).
	inBatch := otherContent(t, evs[2])
	r = e.post(sensorA, ndjson([][]byte{evs[1], second, evs[2], inBatch, evs[3]}), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, counts(3, 0, 2), [3]int{r.body.Accepted, r.body.Duplicates, r.body.Rejected})
	require.Equal(t, []int{1, 3}, []int{r.body.Errors[0].Position, r.body.Errors[1].Position})
	for _, er := range r.body.Errors {
		require.Equal(t, pipeline.CodeEventIDConflict, er.Code)
	}

	raw := rawByID(t, e)
	require.Len(t, raw, 4)
	for _, id := range ids {
		require.Len(t, raw[id], 1, id)
	}
	var want map[string]any
	require.NoError(t, json.Unmarshal(evs[0], &want))
	require.Equal(t, want["observed_at"], raw[ids[0]][0].ObservedAt.String(), "the first version stays")

	dlq := readAll(t, e.brokers, e.cfg.Topics.DLQ)
	require.Len(t, dlq, 3)
	dlqSchema, err := events.Compile(events.DLQSchemaFile)
	require.NoError(t, err)
	for _, m := range dlq {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Value))
		require.NoError(t, err)
		require.NoError(t, dlqSchema.Validate(v), "a dead-letter record of the contract")
		var rec event.DLQ
		require.NoError(t, json.Unmarshal(m.Value, &rec))
		require.Equal(t, pipeline.CodeEventIDConflict, rec.Reason)
		require.NotContains(t, string(m.Value), `"imei":`, "no clear IMEI in the dead letter")
		require.NotContains(t, string(m.Value), "358288020000000")
	}
	require.Contains(t, metrics(t, e), "vigie_ingest_conflicts_total 3")
}

// counts is what a batch result says: accepted, duplicates, rejected.
func counts(accepted, duplicates, rejected int) [3]int { return [3]int{accepted, duplicates, rejected} }

// TestRestartRebuildsWindow: a new instance on the same topic (as after a SIGKILL: nothing
// of the first one's memory survives) answers the resend of what was stored before as
// duplicates, and a conflicting version 409.
func TestRestartRebuildsWindow(t *testing.T) {
	e1 := start(t, nil)
	evs, ids := makeEvents(t, sensorA, "restart", 40)
	r := e1.post(sensorA, ndjson(evs), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 40, r.body.Accepted)
	e1.stop()

	topics := e1.cfg.Topics
	e2 := start(t, func(c *app.Config) { c.Topics = topics }) // start waits for /readyz: rebuilt
	require.Contains(t, metrics(t, e2), `vigie_ingest_dedup_learned_total{result="new"} 40`)
	r = e2.post(sensorA, ndjson(evs), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, counts(0, 40, 0), [3]int{r.body.Accepted, r.body.Duplicates, r.body.Rejected})
	r = e2.post(sensorA, ndjson([][]byte{otherContent(t, evs[7])}), nil)
	require.Equal(t, http.StatusConflict, r.code, r.raw)
	require.Contains(t, r.body.Error, ids[7])
	more, _ := makeEvents(t, sensorA, "after-restart", 5)
	r = e2.post(sensorA, ndjson(more), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 5, r.body.Accepted)

	raw := rawByID(t, e2)
	require.Len(t, raw, 45)
	for id, rs := range raw {
		require.Len(t, rs, 1, id)
	}
}

// TestReplicasLearnEachOther: two instances on one topic, the second following it
// (dedup_follow); what the first stores, the second answers as a duplicate once it has
// read it back.
func TestReplicasLearnEachOther(t *testing.T) {
	a := start(t, nil)
	topics := a.cfg.Topics
	b := start(t, func(c *app.Config) { c.Topics = topics; c.DedupFollow = true })
	evs, _ := makeEvents(t, sensorA, "replica", 10)
	r := a.post(sensorA, ndjson(evs), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 10, r.body.Accepted)
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, b), `vigie_ingest_dedup_learned_total{result="new"} 10`)
	}, 20*time.Second, 20*time.Millisecond, "b read a's events back")
	r = b.post(sensorA, ndjson(evs), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 10, r.body.Duplicates)
	r = b.post(sensorA, ndjson([][]byte{otherContent(t, evs[3])}), nil)
	require.Equal(t, http.StatusConflict, r.code, r.raw)
	require.Len(t, rawByID(t, a), 10)
}

func TestHostileTimesRefusedNormalAccepted(t *testing.T) {
	e := start(t, nil)
	normal, ids := makeEvents(t, sensorA, "normal", 6)
	hostile := map[string]string{
		"2099-06-01T00:00:00.000Z":                                   pipeline.CodeObservedAtInFuture,
		"9999-12-31T23:59:59.999Z":                                   pipeline.CodeObservedAtInFuture,
		"1900-01-01T00:00:00.000Z":                                   pipeline.CodeObservedAtBeyondRetention,
		"0001-01-01T00:00:00.000Z":                                   pipeline.CodeObservedAtBeyondRetention,
		event.NewTime(time.Now().Add(10 * time.Minute)).String():     pipeline.CodeObservedAtInFuture,
		event.NewTime(time.Now().Add(-91 * 24 * time.Hour)).String(): pipeline.CodeObservedAtBeyondRetention,
	}
	bad, _ := makeEvents(t, sensorA, "hostile", len(hostile))
	var lines [][]byte
	want := map[string]string{} // event_id -> code
	i := 0
	for at, code := range hostile {
		var m map[string]any
		require.NoError(t, json.Unmarshal(bad[i], &m))
		m["observed_at"] = at
		b, _ := json.Marshal(m)
		lines = append(lines, normal[i], b)
		want[m["event_id"].(string)] = code
		i++
	}
	r := e.post(sensorA, ndjson(lines), nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, counts(6, 0, 6), [3]int{r.body.Accepted, r.body.Duplicates, r.body.Rejected})
	for _, er := range r.body.Errors {
		require.Equal(t, want[er.EventID], er.Code, er.EventID)
		require.Equal(t, "/observed_at", er.Errors[0].Pointer)
		bound := "clock_skew (5m0s)"
		if er.Code == pipeline.CodeObservedAtBeyondRetention {
			bound = "retention (90 days"
		}
		require.Contains(t, er.Errors[0].Reason, bound)
	}

	// Alone, a refused time is answered 422 with its code and bound.
	r = e.post(sensorA, ndjson(lines[1:2]), nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.code, r.raw)
	require.Contains(t, []string{pipeline.CodeObservedAtInFuture, pipeline.CodeObservedAtBeyondRetention}, r.body.Code)
	require.Regexp(t, `than \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z, the time of receipt`, r.body.Error)
	requireMatchesOpenAPI(t, openAPISchema(t, "BatchResult"), r.raw)

	raw := rawByID(t, e)
	require.Len(t, raw, 6, "only the normal events are stored")
	for _, id := range ids {
		require.Len(t, raw[id], 1)
	}
}
