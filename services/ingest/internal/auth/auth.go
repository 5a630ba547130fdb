// Package auth authenticates sensors by bearer token against the credentials file
// (pkg/sensorauth), which it reloads without restart when its content changes.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/sensorauth"
)

// Store holds the current credentials. Lookups are lock-free; a reload swaps the whole set.
type Store struct {
	path     string
	interval time.Duration
	logger   *zap.Logger
	creds    atomic.Pointer[credentials]
	mu       sync.Mutex // serialises reloads
	loaded   []byte
	reloads  *prometheus.CounterVec
	sensors  prometheus.Gauge
}

type credential struct {
	hash     [sha256.Size]byte
	sensorID string
}

// credentials index entries by the first 8 bytes of the token hash, so that a lookup does
// not scan every sensor; the whole hash is then compared in constant time.
type credentials struct {
	byPrefix map[uint64][]credential
}

// NewStore loads the credentials file; it fails if the file is missing or invalid.
func NewStore(path string, interval time.Duration, logger *zap.Logger, reg prometheus.Registerer) (*Store, error) {
	s := &Store{
		path:     path,
		interval: interval,
		logger:   logger.Named("auth"),
		reloads: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vigie_ingest_credentials_reloads_total",
			Help: "Reloads of the credentials file by result (ok, error).",
		}, []string{"result"}),
		sensors: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "vigie_ingest_credentials_entries",
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
	c := &credentials{byPrefix: make(map[uint64][]credential, len(f.Credentials))}
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

// Run reloads the file every interval until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			changed, err := s.reload()
			switch {
			case err != nil:
				s.reloads.WithLabelValues("error").Inc()
				s.logger.Error("credentials reload, keeping the previous ones", zap.Error(err))
			case changed:
				s.reloads.WithLabelValues("ok").Inc()
				s.logger.Info("credentials reloaded", zap.String("path", s.path))
			}
		}
	}
}

// ReloadNow reloads immediately (tests, SIGHUP).
func (s *Store) ReloadNow() error {
	_, err := s.reload()
	return err
}
