package events_test

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/schemas/events"
)

func TestExamplesValidate(t *testing.T) {
	for _, tc := range []struct{ schema, dir string }{
		{events.DetectorSchemaFile, "examples"},
		{events.RawSchemaFile, "examples/raw"},
		{events.EnrichedSchemaFile, "examples/enriched"},
		{events.DLQSchemaFile, "examples/dlq"},
	} {
		s, err := events.Compile(tc.schema)
		require.NoError(t, err)
		ex, err := events.Examples(tc.dir)
		require.NoError(t, err)
		for name, data := range ex {
			t.Run(tc.dir+"/"+name, func(t *testing.T) {
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
				require.NoError(t, err)
				require.NoError(t, s.Validate(doc))
			})
		}
	}
}
