package traffic

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/pseudonym"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/schemas/events"
	refdata "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

var start = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// loadWorld loads the default reference once for every test of the package.
var loadWorld = sync.OnceValues(func() (*world.World, error) {
	snap, err := reference.Load(refdata.FS)
	if err != nil {
		return nil, err
	}
	return world.New(snap)
})

func testWorld(t testing.TB) *world.World {
	t.Helper()
	w, err := loadWorld()
	require.NoError(t, err)
	return w
}

func smallOptions() Options {
	o := DefaultOptions()
	o.Start, o.Days, o.Scale, o.SupplierPhones, o.InvalidRatio = start, 12, 0.02, 300, 0.002
	return o
}

// all runs a generator to the end.
func all(t testing.TB, g *Generator) []event.Detector {
	var out []event.Detector
	for {
		_, evs, ok := g.Next()
		if !ok {
			return out
		}
		out = append(out, evs...)
	}
}

func digest(t testing.TB, evs []event.Detector) uint64 {
	h := fnv.New64a()
	enc := json.NewEncoder(h)
	for _, e := range evs {
		require.NoError(t, enc.Encode(e))
	}
	return h.Sum64()
}

func TestDeterministicBySeed(t *testing.T) {
	w := testWorld(t)
	run := func(seed uint64) ([]event.Detector, Truth) {
		o := smallOptions()
		o.Seed = seed
		g, err := New(w, o)
		require.NoError(t, err)
		return all(t, g), g.Truth()
	}
	a, ta := run(7)
	b, tb := run(7)
	c, _ := run(8)
	require.Equal(t, len(a), len(b))
	require.Equal(t, digest(t, a), digest(t, b))
	require.Equal(t, ta, tb)
	require.NotEqual(t, digest(t, a), digest(t, c))
}

func TestEventsFollowTheContract(t *testing.T) {
	w := testWorld(t)
	schema, err := events.Compile(events.DetectorSchemaFile)
	require.NoError(t, err)
	g, err := New(w, smallOptions())
	require.NoError(t, err)
	evs := all(t, g)
	require.Greater(t, len(evs), 5_000)

	kinds := map[event.Kind]int{}
	invalid := 0
	seen := map[string]bool{}
	for i, e := range evs {
		kinds[e.Kind]++
		key := e.SensorID + "/" + e.EventID
		require.False(t, seen[key], "duplicate event id %s", key)
		seen[key] = true
		_, ok := w.Ref.Sensor(e.SensorID)
		require.True(t, ok, "unknown sensor %s", e.SensorID)
		require.False(t, e.ObservedAt.Before(g.Start()) || !e.ObservedAt.Before(g.End()), "event %d outside the period: %s", i, e.ObservedAt)
		if i > 0 {
			require.False(t, e.ObservedAt.Before(evs[i-1].ObservedAt.Time), "events out of order at %d", i)
		}
		if e.IMEI != "" {
			require.True(t, pseudonym.LuhnValid(e.IMEI), e.IMEI)
			require.Regexp(t, `^(208|206|214|604|603)[0-9]{12}$`, e.IMSI)
		}
		planted := e.RSSIdBm != nil && *e.RSSIdBm == -250
		if planted {
			invalid++
		}
		// Validating every event is slow under -race: every planted one, every rare kind,
		// one in four of the others.
		if !planted && kinds[e.Kind] > 50 && i%4 != 0 {
			continue
		}
		data, err := json.Marshal(e)
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		require.NoError(t, err)
		err = schema.Validate(doc)
		require.Equal(t, planted, err != nil, "event %s: %v", data, err)
	}
	require.Equal(t, g.Invalid(), invalid)
	require.Positive(t, invalid)
	for _, k := range event.Kinds {
		require.Positive(t, kinds[k], "no %s event", k)
	}
	t.Logf("%d events over %d days: %v, %d invalid on purpose", len(evs), g.Days(), kinds, invalid)
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"default", func(*Options) {}, ""},
		{"short", func(o *Options) { o.Days = 3 }, "days"},
		{"scenario", func(o *Options) { o.Scenarios = []string{"nope"} }, "scenarios"},
		{"run id", func(o *Options) { o.RunID = "a b" }, "run_id"},
		{"run id digits", func(o *Options) { o.RunID = "r1234567" }, "six digits"},
		{"run id separated digits", func(o *Options) { o.RunID = "s1-25-1319-40" }, "six digits"},
		{"invalid ratio", func(o *Options) { o.InvalidRatio = 2 }, "invalid_ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			tt.change(&o)
			err := o.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func BenchmarkDefaultDay(b *testing.B) {
	w := testWorld(b)
	for b.Loop() {
		g, err := New(w, DefaultOptions())
		require.NoError(b, err)
		n := 0
		for range 7 {
			_, evs, _ := g.Next()
			n += len(evs)
		}
		b.ReportMetric(float64(n)/7, "events/day")
	}
}

func TestLetters(t *testing.T) {
	for n, want := range map[uint64]string{0: "a", 25: "z", 26: "ba", 26*26 + 3: "bad"} {
		require.Equal(t, want, Letters(n))
	}
}
