package events_test

import (
	"bytes"
	"encoding/json"
	"strings"
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

// TestEveryFieldDocumented walks the detector schema: every property (at any depth) has a
// description and a type, directly or through its $ref, so that the contract says what each
// field is and in which unit.
func TestEveryFieldDocumented(t *testing.T) {
	data, err := events.FS.ReadFile(events.DetectorSchemaFile)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, json.Unmarshal(data, &root))
	defs := root["$defs"].(map[string]any)
	resolve := func(s map[string]any) map[string]any {
		if ref, ok := s["$ref"].(string); ok {
			return defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
		return s
	}
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			ps := resolve(p.(map[string]any))
			require.NotEmpty(t, ps["description"], "%s/%s has no description", path, name)
			require.NotEmpty(t, ps["type"], "%s/%s has no type", path, name)
			walk(path+"/"+name, ps)
		}
	}
	walk("", root)
}
