// Package events embeds Vigie's event contract v1 so that every service binary carries the
// exact contract it was built against: the JSON Schemas of the detector event (what sensors
// send to ingest), of the raw and enriched events (what flows on detections.raw.v1 and
// detections.enriched.v1), of the dead-letter record (detections.dlq.v1), of the alert
// (alerts.v1), the OpenAPI description of the ingest HTTP API, and example documents of
// every kind. The Go codec of each contract is pkg/event.
package events

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// FS holds the schema files at its root and the examples under examples/ (detector events),
// examples/raw/, examples/enriched/, examples/dlq/ and examples/alert/.
//
//go:embed *.json *.yaml examples
var FS embed.FS

// File names of the contract documents inside FS.
const (
	DetectorSchemaFile = "detector-event.v1.schema.json"
	RawSchemaFile      = "raw-event.v1.schema.json"
	EnrichedSchemaFile = "enriched-event.v1.schema.json"
	DLQSchemaFile      = "dlq-record.v1.schema.json"
	AlertSchemaFile    = "alert.v1.schema.json"
	OpenAPIFile        = "ingest-api.openapi.yaml"
)

// BaseURI is the prefix of every schema's $id; a schema file's $id is BaseURI + its file name.
const BaseURI = "https://schemas.vigie.invalid/events/"

// Compile compiles one of the schema files (DetectorSchemaFile, RawSchemaFile, …) with every
// other schema of the contract loaded, so that cross-file $refs resolve offline. Formats
// (date-time) are asserted, as the contract relies on them.
func Compile(file string) (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, name := range []string{DetectorSchemaFile, RawSchemaFile, EnrichedSchemaFile, DLQSchemaFile, AlertSchemaFile} {
		data, err := FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("parse embedded schema %s: %w", name, err)
		}
		if err := c.AddResource(BaseURI+name, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", name, err)
		}
	}
	s, err := c.Compile(BaseURI + file)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", file, err)
	}
	return s, nil
}

// Examples returns the example documents of one examples folder ("examples",
// "examples/raw", "examples/enriched", "examples/dlq", "examples/alert") by file name.
func Examples(dir string) (map[string][]byte, error) {
	entries, err := fs.ReadDir(FS, dir)
	if err != nil {
		return nil, fmt.Errorf("read examples %s: %w", dir, err)
	}
	out := make(map[string][]byte, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := FS.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read example %s: %w", e.Name(), err)
		}
		out[e.Name()] = data
	}
	return out, nil
}
