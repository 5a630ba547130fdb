// Package auth authenticates sensors by bearer token against the credentials file
// (pkg/sensorauth), which it reloads without restart (SIGHUP) when its content changed, and
// says what an authenticated sensor may post (the kinds of its type).
//
// It fails closed: no start without a valid file, and a reload that finds the file missing,
// unreadable, invalid or empty drops every credential (Authenticate answers
// ErrUnavailable, the readiness check fails) until a valid file is loaded. Keeping the old
// credentials instead would keep a sensor one meant to revoke.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
)

// Sensor is an authenticated sensor.
type Sensor struct {
	ID   string
	Type reference.SensorType
}

// May reports whether the sensor's type reports events of kind k.
func (s Sensor) May(k event.Kind) bool { return slices.Contains(s.Type.Kinds(), k) }

// Errors of Authenticate.
var (
	// ErrUnknownToken: no token, or one that no credential holds.
	ErrUnknownToken = errors.New("missing or unknown bearer token")
	// ErrUnavailable: the credentials file could not be loaded at the last reload, so no
	// sensor is known until it is fixed and reloaded.
	ErrUnavailable = errors.New("credentials unavailable: the credentials file could not be loaded at the last reload")
)

// Store holds the current credentials. Lookups are lock-free; a reload swaps the whole set.
type Store struct {
	path    string
	logger  *zap.Logger
	creds   atomic.Pointer[credentials]
	mu      sync.Mutex // serialises reloads
	loaded  []byte
	sensors prometheus.Gauge
}

type credential struct {
	hash   [sha256.Size]byte
	sensor Sensor
}

// credentials index entries by the first 8 bytes of the token hash, so that a lookup does
// not scan every sensor; the whole hash is then compared in constant time. The zero value
// (no entries) is what a failed reload leaves.
type credentials struct {
	byPrefix map[uint64][]credential
	n        int
}

// unavailable is the credentials after a failed reload: none.
var unavailable = &credentials{}

// NewStore loads the credentials file; it fails if the file is missing or invalid (fail
// closed: no start without credentials). reg prefixes the metric names (vigie_ingest_).
func NewStore(path string, logger *zap.Logger, reg prometheus.Registerer) (*Store, error) {
	s := &Store{
		path:   path,
		logger: logger.Named("auth"),
		sensors: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "credentials_entries",
			Help: "Credential entries loaded.",
		}),
	}
	if _, err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Authenticate returns the sensor a token belongs to: ErrUnknownToken when none,
// ErrUnavailable while the last reload failed.
func (s *Store) Authenticate(token string) (Sensor, error) {
	c := s.creds.Load()
	if c == unavailable {
		return Sensor{}, ErrUnavailable
	}
	if token == "" {
		return Sensor{}, ErrUnknownToken
	}
	h := sha256.Sum256([]byte(token))
	var found Sensor
	for _, e := range c.byPrefix[binary.BigEndian.Uint64(h[:8])] {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e.sensor
		}
	}
	if found.ID == "" {
		return Sensor{}, ErrUnknownToken
	}
	return found, nil
}

// Ready is the readiness check: not ready while no credentials are loaded.
func (s *Store) Ready(context.Context) error {
	if s.creds.Load() == unavailable {
		return ErrUnavailable
	}
	return nil
}

// reload reads the file and swaps the credentials when its content changed. On error no
// credential stays in force (fail closed).
func (s *Store) reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, data, err := s.read()
	if err != nil {
		if s.creds.Load() != nil { // at start the error alone ends the process
			s.creds.Store(unavailable)
			s.loaded = nil
			s.sensors.Set(0)
		}
		return true, err
	}
	if c == nil {
		return false, nil
	}
	s.creds.Store(c)
	s.loaded = data
	s.sensors.Set(float64(c.n))
	return true, nil
}

// read reads and indexes the file; nil credentials when its content is what is loaded.
func (s *Store) read() (*credentials, []byte, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("read credentials %s: %w", s.path, err)
	}
	if old := s.creds.Load(); old != nil && old != unavailable && bytes.Equal(data, s.loaded) {
		return nil, nil, nil
	}
	f, err := sensorauth.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("credentials %s: %w", s.path, err)
	}
	if len(f.Credentials) == 0 {
		return nil, nil, fmt.Errorf("credentials %s: no entries", s.path)
	}
	c := &credentials{byPrefix: make(map[uint64][]credential, len(f.Credentials)), n: len(f.Credentials)}
	for _, e := range f.Credentials {
		cr := credential{sensor: Sensor{ID: e.SensorID, Type: e.SensorType}}
		if _, err := hex.Decode(cr.hash[:], []byte(e.TokenSHA256)); err != nil {
			return nil, nil, fmt.Errorf("credentials %s: %w", s.path, err)
		}
		p := binary.BigEndian.Uint64(cr.hash[:8])
		c.byPrefix[p] = append(c.byPrefix[p], cr)
	}
	return c, data, nil
}

// Reload reads the file again and swaps the credentials when its content changed (the
// service's SIGHUP hook, whose runs are counted by vigie_ingest_reloads_total). A file that
// cannot be read or parsed, or that has no entries, leaves no credential in force: every
// request is answered 503 and ingest is not ready until a valid file is reloaded (write it
// atomically, as sensorauth.File.WriteFile does). The error says which file and why.
func (s *Store) Reload(context.Context) error {
	changed, err := s.reload()
	if err != nil {
		s.logger.Error("credentials not loaded: every sensor is refused until a valid file is reloaded", zap.String("path", s.path), zap.Error(err))
		return err
	}
	if changed {
		s.logger.Info("credentials changed", zap.String("path", s.path), zap.Int("entries", s.creds.Load().n))
	} else {
		s.logger.Debug("credentials unchanged", zap.String("path", s.path))
	}
	return nil
}
