package alert_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/schemas/events"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// TestStreamingAlertsMatchSchema runs the streaming rules over planted patterns and checks
// that every alert version, as the Kafka sink encodes it, is valid against alert.v1 and
// decodes back to the same alert.
func TestStreamingAlertsMatchSchema(t *testing.T) {
	schema, err := events.Compile(events.AlertSchemaFile)
	require.NoError(t, err)
	ref, err := scenario.DefaultReference()
	require.NoError(t, err)
	rs, err := rules.LoadDefault()
	require.NoError(t, err)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	g := scenario.New(ref, 11, "s")
	es, _ := g.Background(start, 10, 6, 10, 6)
	for _, p := range []scenario.Planted{g.MultiSite(g.Facility(0), g.Facility(1), start.Add(24*time.Hour)), g.ImpossibleTravel(start.Add(48 * time.Hour)),
		g.SimChurn(g.Facility(2), start.Add(72*time.Hour)), g.SeizedResurrection(g.Facility(3), start.Add(96*time.Hour))} {
		es = append(es, p.Events...)
	}
	scenario.SortByTime(es)
	eng := stream.NewEngine(rs, nil)
	var out []alert.Alert
	for i := range es {
		out = eng.Observe(&es[i], true, out)
	}
	require.NotEmpty(t, out)
	for _, a := range out {
		data, err := event.EncodeAlert(&a)
		require.NoError(t, err)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		require.NoError(t, err)
		require.NoError(t, schema.Validate(doc), string(data))
		var back alert.Alert
		require.NoError(t, event.DecodeAlert(data, &back))
		require.Equal(t, a.ID, back.ID)
		require.True(t, a.UpdatedAt.Equal(back.UpdatedAt))
		require.Equal(t, a.Version, back.Version)
	}
}
