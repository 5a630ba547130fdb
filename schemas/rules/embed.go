// Package rules embeds Vigie's default correlation rules (one YAML file per rule) and the
// JSON Schema they follow, so that the correlator binary carries the rules it was built with.
// An analyst adds or tunes a rule by editing a YAML file here (or in a directory given to
// the correlator at start): rule types are Go code in services/correlator, rule instances
// are data. The format is described in README.md beside this file.
package rules

import (
	"bytes"
	"embed"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// FS holds the default rules (*.yaml) and the schema at its root.
//
//go:embed *.yaml rule.v1.schema.json
var FS embed.FS

// SchemaFile is the name of the rules' JSON Schema inside FS.
const SchemaFile = "rule.v1.schema.json"

// SchemaURI is the $id of the schema.
const SchemaURI = "https://schemas.vigie.invalid/rules/" + SchemaFile

// Compile compiles the rule schema.
func Compile() (*jsonschema.Schema, error) {
	data, err := FS.ReadFile(SchemaFile)
	if err != nil {
		return nil, fmt.Errorf("read embedded rule schema: %w", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse rule schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaURI, doc); err != nil {
		return nil, fmt.Errorf("add rule schema: %w", err)
	}
	s, err := c.Compile(SchemaURI)
	if err != nil {
		return nil, fmt.Errorf("compile rule schema: %w", err)
	}
	return s, nil
}
