package refwatch

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/service"
	schemaref "github.com/vigie/vigie/schemas/reference"
)

// Config is a service's `reference` block: where the reference data is.
type Config struct {
	// Dir holds facilities.csv, sensors.csv, tac.csv and mcc_mnc.csv, watched for changes.
	// Empty: the copy embedded in the binary (SIGHUP then reloads the same data).
	Dir string `yaml:"dir"`
	// Debounce is how long the directory must be quiet after a change before reloading.
	Debounce time.Duration `yaml:"debounce"`
}

// DefaultConfig is the embedded reference, reloaded 300 ms after the last change.
func DefaultConfig() Config { return Config{Debounce: 300 * time.Millisecond} }

// Validate names the field that is wrong.
func (c Config) Validate() error {
	if c.Debounce <= 0 {
		return errors.New("reference.debounce: must be positive")
	}
	return nil
}

// Open loads the reference data of cfg into a new store (a service does not start on broken
// reference data), and wires it into s: the directory watch runs with the service and
// SIGHUP reloads.
func Open(s *service.Service, cfg Config) (*Store, error) {
	logger := s.Logger
	store, err := New(cfg.Dir, schemaref.FS, logger, s.Registerer())
	if err != nil {
		return nil, err
	}
	snap := store.Current()
	st := snap.Stats()
	logger.Info("reference data loaded", zap.String("version", snap.Version()), zap.String("dir", cfg.Dir),
		zap.Duration("load", snap.LoadDuration()), zap.Int("facilities", st.Facilities), zap.Int("sensors", st.Sensors),
		zap.Int("tacs", st.TACs), zap.Int("operators", st.Operators))
	s.Add("reference-watch", func(ctx context.Context) error { return store.Run(ctx, cfg.Debounce) }, nil)
	s.OnReload("reference", func(context.Context) error {
		result, err := store.Reload()
		if err != nil {
			return err
		}
		logger.Info("reference reload on sighup", zap.String("result", result))
		return nil
	})
	return store, nil
}
