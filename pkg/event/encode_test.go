package event_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/schemas/events"
)

func requireSameAsMarshal(t *testing.T, r *event.Raw) {
	t.Helper()
	want, err := json.Marshal(r)
	require.NoError(t, err)
	got, err := r.AppendJSON(nil)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

func TestAppendJSONMatchesMarshal(t *testing.T) {
	ex, err := events.Examples("examples/raw")
	require.NoError(t, err)
	for name, data := range ex {
		var r event.Raw
		require.NoError(t, json.Unmarshal(data, &r), name)
		requireSameAsMarshal(t, &r)
	}
	f := func(v float64) *float64 { return &v }
	for _, v := range []float64{0, math.Copysign(0, -1), 1e-7, 1e-6, 123456789, 1e20, 1e21, 1.5e300, -64.25, 935.2, math.SmallestNonzeroFloat64} {
		requireSameAsMarshal(t, &event.Raw{Common: event.Common{FreqMHz: f(v)}})
	}
	for _, s := range []string{"a<b>&c", "\"q\\", "\x00\x01\b\f\n\r\t\x1f", "é ü 漢", "\xff\xfe", "\u2028\u2029", "zone 🚁"} {
		requireSameAsMarshal(t, &event.Raw{Common: event.Common{Zone: s}})
	}
	requireSameAsMarshal(t, &event.Raw{ReceivedAt: event.NewTime(time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC))})
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("zone", "B-214", 806.0, int64(0))
	f.Add("\xff<", "\u2028", 1e-9, int64(-1))
	f.Fuzz(func(t *testing.T, zone, cell string, freq float64, dur int64) {
		if math.IsNaN(freq) || math.IsInf(freq, 0) {
			return
		}
		requireSameAsMarshal(t, &event.Raw{Common: event.Common{Zone: zone, Cell: cell, FreqMHz: &freq, DurationMs: &dur}})
	})
}
