// Package creds makes the sensors' bearer tokens for a simulation: the credentials file the
// ingest service reads (token hashes, pkg/sensorauth) and the simulator's own tokens file
// (the tokens themselves, mode 0600), which only the simulator reads.
package creds

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
)

// Tokens maps a sensor id to its bearer token.
type Tokens map[string]string

type tokensFile struct {
	Tokens map[string]string `yaml:"tokens"`
}

// Generate makes one new token per sensor and the matching credentials file, each entry
// with its sensor's type (which decides the kinds it may post).
func Generate(sensors []*reference.Sensor) (Tokens, *sensorauth.File, error) {
	toks := Tokens{}
	f := &sensorauth.File{}
	for _, s := range sensors {
		id := s.ID
		e, tok, err := sensorauth.NewEntry(id, s.Type)
		if err != nil {
			return nil, nil, err
		}
		e.Comment = "simulator"
		f.Credentials = append(f.Credentials, e)
		toks[id] = tok
	}
	return toks, f, nil
}

// Write writes the ingest credentials file and the tokens file, both atomically with mode
// 0600, creating their folders.
func Write(credentialsPath, tokensPath string, toks Tokens, f *sensorauth.File) error {
	for _, p := range []string{credentialsPath, tokensPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("create folder of %s: %w", p, err)
		}
	}
	if err := f.WriteFile(credentialsPath); err != nil {
		return err
	}
	data, err := yaml.Marshal(tokensFile{Tokens: toks})
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	tmp := tokensPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write tokens: %w", err)
	}
	if err := os.Rename(tmp, tokensPath); err != nil {
		return fmt.Errorf("replace tokens: %w", err)
	}
	return nil
}

// Load reads a tokens file.
func Load(path string) (Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w (write it with `simulator credentials`)", err)
	}
	var f tokensFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse tokens %s: %w", path, err)
	}
	if len(f.Tokens) == 0 {
		return nil, fmt.Errorf("tokens %s: no token", path)
	}
	return Tokens(f.Tokens), nil
}
