package e2e

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// The fault tests' count on a run without a fault: a stream sent as sensors send it, each
// batch retried until answered; every acknowledged identity is one row, every rollup sums
// to the raw table's count, no clear identifier downstream. What the fault tests hold a
// pipeline to, with nothing broken; on a broker of its own, as the broker restart test.
func TestFaultFreeCounted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b := startOwnBroker(t)
	p := newPipeline(t, b.brokers, "ff")
	p.start()
	events := faultEvents(t, 30)
	p.logf("pipeline started, %d events to send", len(events))
	tr := newTracker(p)
	tr.send(ctx, t, events, sendOptions{Workers: 4, Batch: 100, Rate: streamRate(events), Retry: true})
	p.logf("stream sent")
	require.Len(t, tr.ackedSet(), len(events), "every event acknowledged: %s", tr)
	require.EqualValues(t, len(events), tr.accepted, "every event accepted once: %s", tr)
	p.checkCounted(ctx, tr, nil)
}

// faultEvents is a week of background traffic (no planted scenario), about 2,500 events,
// all within the retention window, with event ids unique to the run.
func faultEvents(t *testing.T, seed uint64) []event.Detector {
	t.Helper()
	opt := traffic.DefaultOptions()
	opt.Seed, opt.Days, opt.Scale, opt.Scenarios = seed, 7, 0.008, nil
	opt.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -opt.Days)
	opt.RunID = "f-" + traffic.Letters(rand.Uint64()>>20)
	events, _ := generate(t, opt)
	return events
}

// generate returns every event of the options' period and what they plant.
func generate(t *testing.T, opt traffic.Options) ([]event.Detector, traffic.Truth) {
	t.Helper()
	ref, err := reference.Load(refdata.FS)
	require.NoError(t, err)
	w, err := world.New(ref)
	require.NoError(t, err)
	g, err := traffic.New(w, opt)
	require.NoError(t, err)
	var out []event.Detector
	for {
		_, evs, ok := g.Next()
		if !ok {
			return out, g.Truth()
		}
		out = append(out, evs...)
	}
}

// streamRate sends events in about 10 s: a fault that takes a few seconds falls mid-stream.
func streamRate(events []event.Detector) float64 { return float64(len(events)) / 10 }
