package app_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/schemas/events"
)

// openAPISchema compiles one schema of the OpenAPI description's components (OpenAPI 3.1
// schemas are JSON Schema 2020-12), so that tests check real answers against the document.
func openAPISchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	data, err := events.FS.ReadFile(events.OpenAPIFile)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	// Round-trip through JSON so that the compiler sees JSON types.
	j, err := json.Marshal(doc)
	require.NoError(t, err)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(events.BaseURI+events.OpenAPIFile, v))
	s, err := c.Compile(events.BaseURI + events.OpenAPIFile + "#/components/schemas/" + name)
	require.NoError(t, err)
	return s
}

func requireMatchesOpenAPI(t *testing.T, s *jsonschema.Schema, body string) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	require.NoError(t, s.Validate(v), body)
}
