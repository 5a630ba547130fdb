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
//	    token_sha256: 4f1d…64 hex digits…
//	  - sensor_id: cp-aix-luynes-mas-01      # a second token during a rotation
//	    token_sha256: 9c0e…
//	    comment: rotated 2026-11
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

	"gopkg.in/yaml.v3"
)

// TokenPrefix starts every token, so that a leaked token is recognisable by secret scanners.
const TokenPrefix = "vgs_"

// Entry is one credential: a sensor and the SHA-256 (hex) of one of its tokens.
type Entry struct {
	SensorID    string `yaml:"sensor_id"`
	TokenSHA256 string `yaml:"token_sha256"`
	Comment     string `yaml:"comment,omitempty"`
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

// NewEntry makes a credential for sensorID with a new token, returned beside it: the caller
// gives the token to the sensor and writes the entry to the credentials file.
func NewEntry(sensorID string) (Entry, string, error) {
	if !sensorRE.MatchString(sensorID) {
		return Entry{}, "", fmt.Errorf("sensor id %q must match %s", sensorID, sensorRE)
	}
	tok, err := NewToken()
	if err != nil {
		return Entry{}, "", err
	}
	return Entry{SensorID: sensorID, TokenSHA256: HashToken(tok)}, tok, nil
}

// Validate checks every entry and names the first bad one by position.
func (f *File) Validate() error {
	for i, e := range f.Credentials {
		if !sensorRE.MatchString(e.SensorID) {
			return fmt.Errorf("credentials[%d].sensor_id: %q must match %s", i, e.SensorID, sensorRE)
		}
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
