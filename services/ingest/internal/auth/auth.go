// Package auth authenticates sensors by bearer token against the credentials file
// (pkg/sensorauth), which it reloads without restart (SIGHUP) when its content changed.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/sensorauth"
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
	hash     [sha256.Size]byte
	sensorID string
}

// credentials index entries by the first 8 bytes of the token hash, so that a lookup does
// not scan every sensor; the whole hash is then compared in constant time.
type credentials struct {
	byPrefix map[uint64][]credential
	n        int
}

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

// Authenticate returns the sensor a token belongs to.
func (s *Store) Authenticate(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(token))
	c := s.creds.Load()
	found := ""
	for _, e := range c.byPrefix[binary.BigEndian.Uint64(h[:8])] {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found = e.sensorID
		}
	}
	return found, found != ""
}

// reload reads the file and swaps the credentials when its content changed. On error the
// previous credentials stay in force.
func (s *Store) reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, fmt.Errorf("read credentials %s: %w", s.path, err)
	}
	if s.creds.Load() != nil && bytes.Equal(data, s.loaded) {
		return false, nil
	}
	f, err := sensorauth.Parse(data)
	if err != nil {
		return false, fmt.Errorf("credentials %s: %w", s.path, err)
	}
	if len(f.Credentials) == 0 {
		// Most likely a file caught while being rewritten in place; never lock every
		// sensor out because of it.
		return false, fmt.Errorf("credentials %s: no entries", s.path)
	}
	c := &credentials{byPrefix: make(map[uint64][]credential, len(f.Credentials)), n: len(f.Credentials)}
	for _, e := range f.Credentials {
		var cr credential
		if _, err := hex.Decode(cr.hash[:], []byte(e.TokenSHA256)); err != nil {
			return false, fmt.Errorf("credentials %s: %w", s.path, err)
		}
		cr.sensorID = e.SensorID
		p := binary.BigEndian.Uint64(cr.hash[:8])
		c.byPrefix[p] = append(c.byPrefix[p], cr)
	}
	s.creds.Store(c)
	s.loaded = data
	s.sensors.Set(float64(len(f.Credentials)))
	return true, nil
}

// Reload reads the file again and swaps the credentials when its content changed (the
// service's SIGHUP hook, whose runs are counted by vigie_ingest_reloads_total). A file that
// cannot be read or parsed, or that has no entries, leaves the previous credentials in
// force; the error says which file and why.
func (s *Store) Reload(context.Context) error {
	changed, err := s.reload()
	if err != nil {
		return err
	}
	if changed {
		s.logger.Info("credentials changed", zap.String("path", s.path), zap.Int("entries", s.creds.Load().n))
	} else {
		s.logger.Debug("credentials unchanged", zap.String("path", s.path))
	}
	return nil
}
