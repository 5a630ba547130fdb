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
		{events.AlertSchemaFile, "examples/alert"},
	} {
		s, err := events.Compile(tc.schema)
		require.NoError(t, err)
		ex, err := events.Examples(tc.dir)
		require.NoError(t, err)
		require.NotEmpty(t, ex, tc.dir)
		for name, data := range ex {
			t.Run(tc.dir+"/"+name, func(t *testing.T) {
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
				require.NoError(t, err)
				require.NoError(t, s.Validate(doc))
			})
		}
	}
}

// TestEveryFieldDocumented walks the detector and alert schemas: every property (at any
// depth) has a description and a type, directly or through its $ref, so that the contract
// says what each field is and in which unit.
func TestEveryFieldDocumented(t *testing.T) {
	for _, file := range []string{events.DetectorSchemaFile, events.AlertSchemaFile} {
		t.Run(file, func(t *testing.T) { requireDocumented(t, file) })
	}
}

// TestAlertExamplesInvalid checks that the alert schema says no to what the correlator
// never writes.
func TestAlertExamplesInvalid(t *testing.T) {
	s, err := events.Compile(events.AlertSchemaFile)
	require.NoError(t, err)
	ex, err := events.Examples("examples/alert")
	require.NoError(t, err)
	for name, mutate := range map[string]func(m map[string]any){
		"null facilities":    func(m map[string]any) { m["facilities"] = nil },
		"seconds only":       func(m map[string]any) { m["updated_at"] = "2026-11-25T09:14:07Z" },
		"version 0":          func(m map[string]any) { m["version"] = 0 },
		"short id":           func(m map[string]any) { m["alert_id"] = "abc" },
		"missing rule":       func(m map[string]any) { delete(m, "rule") },
		"unknown field":      func(m map[string]any) { m["score"] = 1 },
		"duplicate evidence": func(m map[string]any) { m["evidence_event_ids"] = []any{"a", "a"} },
	} {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			require.NoError(t, json.Unmarshal(ex["device_multi_site.json"], &m))
			mutate(m)
			data, err := json.Marshal(m)
			require.NoError(t, err)
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			require.NoError(t, err)
			require.Error(t, s.Validate(doc))
		})
	}
}

func requireDocumented(t *testing.T, file string) {
	data, err := events.FS.ReadFile(file)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, json.Unmarshal(data, &root))
	defs, _ := root["$defs"].(map[string]any)
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
