// Package sensorauth defines the sensor credentials file that the ingest service reads and
// that tools (the simulator, the demo, operators) write: one entry per sensor token, holding
// the SHA-256 of the token, never the token itself.
//
// A token is 32 random bytes written as "vgs_" + base64url (no padding). Because tokens are
// random and long, a fast hash is enough to store them: nobody can search 2^256 tokens, so a
// slow password hash (bcrypt, argon2) would only cost ingest CPU on every request.
//
// File layout (YAML):
//
//	credentials:
//	  - sensor_id: cp-aix-luynes-mas-01
//	    sensor_type: mas
//	    token_sha256: 4f1d…64 hex digits…
//	  - sensor_id: cp-aix-luynes-mas-01      # a second token during a rotation
//	    sensor_type: mas
//	    token_sha256: 9c0e…
//	    comment: rotated 2026-11
//
// The sensor type (reference.SensorTypes) decides the event kinds the sensor may post
// (reference.SensorType.Kinds): a jammer's token cannot post what a managed access system
// sees. It is required: an entry without one would authorise nothing, so it is refused.
package sensorauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/reference"
)

// TokenPrefix starts every token, so that a leaked token is recognisable by secret scanners.
const TokenPrefix = "vgs_"

// Entry is one credential: a sensor and the SHA-256 (hex) of one of its tokens.
type Entry struct {
	SensorID    string               `yaml:"sensor_id"`
	SensorType  reference.SensorType `yaml:"sensor_type"`
	TokenSHA256 string               `yaml:"token_sha256"`
	Comment     string               `yaml:"comment,omitempty"`
}

// File is the credentials file.
type File struct {
	Credentials []Entry `yaml:"credentials"`
}

var (
	sensorRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	hashRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// NewToken returns a new random token.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// HashToken returns the hex SHA-256 of a token, as stored in the credentials file.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewEntry makes a credential for sensorID, a sensor of type st, with a new token, returned
// beside it: the caller gives the token to the sensor and writes the entry to the
// credentials file.
func NewEntry(sensorID string, st reference.SensorType) (Entry, string, error) {
	e := Entry{SensorID: sensorID, SensorType: st}
	if err := e.validate(); err != nil {
		return Entry{}, "", err
	}
	tok, err := NewToken()
	if err != nil {
		return Entry{}, "", err
	}
	e.TokenSHA256 = HashToken(tok)
	return e, tok, nil
}

func (e *Entry) validate() error {
	if !sensorRE.MatchString(e.SensorID) {
		return fmt.Errorf("sensor_id: %q must match %s", e.SensorID, sensorRE)
	}
	if !slices.Contains(reference.SensorTypes, e.SensorType) {
		return fmt.Errorf("sensor_type of %s: %q is not a sensor type (one of %v)", e.SensorID, e.SensorType, reference.SensorTypes)
	}
	return nil
}

// Validate checks every entry and names the first bad one by position.
func (f *File) Validate() error {
	types := map[string]reference.SensorType{}
	for i, e := range f.Credentials {
		if err := e.validate(); err != nil {
			return fmt.Errorf("credentials[%d].%w", i, err)
		}
		if t, ok := types[e.SensorID]; ok && t != e.SensorType {
			return fmt.Errorf("credentials[%d].sensor_type: %s is %q here and %q in an earlier entry: one sensor, one type", i, e.SensorID, e.SensorType, t)
		}
		types[e.SensorID] = e.SensorType
		if !hashRE.MatchString(e.TokenSHA256) {
			return fmt.Errorf("credentials[%d].token_sha256: must be 64 lowercase hex digits (sha256 of the token)", i)
		}
	}
	return nil
}

// Parse reads and validates a credentials file's content. Unknown keys are errors.
func Parse(data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse credentials: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Load reads and validates a credentials file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return Parse(data)
}

// Marshal encodes the file as YAML.
func (f *File) Marshal() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return yaml.Marshal(f)
}

// WriteFile writes f to path atomically (a temporary file renamed over path), with mode
// 0600, so that a reloading ingest never reads a half-written file.
func (f *File) WriteFile(path string) error {
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace credentials: %w", err)
	}
	return nil
}
