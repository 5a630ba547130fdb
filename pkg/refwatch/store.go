// Package refwatch keeps a service's current reference snapshot (the enricher's, ingest's)
// and replaces it when the reference files change (file watch or SIGHUP). Readers take the
// current snapshot with one atomic load and keep using it for the whole batch they work on;
// a reload builds a complete new snapshot beside the old one and swaps the pointer, so the
// stream never pauses and never sees half of a version. A reference directory that fails to
// load is refused with an error naming the file, line and column; the previous snapshot
// stays in use.
package refwatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
)

// Store holds the current reference snapshot.
type Store struct {
	source  fs.FS
	dir     string
	logger  *zap.Logger
	metrics storeMetrics
	current atomic.Pointer[reference.Snapshot]

	mu        sync.Mutex // serialises reloads
	listeners []func(*reference.Snapshot)
	lastErr   error
}

type storeMetrics struct {
	reloads  *prometheus.CounterVec
	duration prometheus.Histogram
	info     *prometheus.GaugeVec
	entries  *prometheus.GaugeVec
	lastOK   prometheus.Gauge
}

// Reload results, the label of vigie_<service>_reference_reloads_total.
const (
	ResultOK        = "ok"
	ResultUnchanged = "unchanged"
	ResultError     = "error"
)

// New loads the reference data from dir, or from the embedded default when dir is empty,
// and fails when it does not load: a service does not start on broken reference data.
// defaults is the embedded copy (schemas/reference.FS).
func New(dir string, defaults fs.FS, logger *zap.Logger, reg prometheus.Registerer) (*Store, error) {
	s := &Store{dir: dir, source: defaults, logger: logger.Named("reference")}
	if dir != "" {
		s.source = os.DirFS(dir)
	}
	f := promauto.With(reg)
	s.metrics = storeMetrics{
		reloads:  f.NewCounterVec(prometheus.CounterOpts{Name: "reference_reloads_total", Help: "Reference reload attempts by result: ok (new version in use), unchanged (same content), error (refused, previous version kept)."}, []string{"result"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "reference_load_seconds", Help: "Time to read and validate the reference files.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		info:     f.NewGaugeVec(prometheus.GaugeOpts{Name: "reference_info", Help: "1 for the reference version in use."}, []string{"version"}),
		entries:  f.NewGaugeVec(prometheus.GaugeOpts{Name: "reference_entries", Help: "Entries of the reference version in use, by kind."}, []string{"kind"}),
		lastOK:   f.NewGauge(prometheus.GaugeOpts{Name: "reference_last_reload_success_timestamp_seconds", Help: "When a reference version was last put in use."}),
	}
	for _, r := range []string{ResultOK, ResultUnchanged, ResultError} {
		s.metrics.reloads.WithLabelValues(r)
	}
	snap, err := reference.Load(s.source)
	if err != nil {
		return nil, fmt.Errorf("load reference data from %s: %w", s.describe(), err)
	}
	s.install(snap)
	return s, nil
}

// Current is the snapshot in use. Callers keep it for a unit of work (a batch) and call
// Current again for the next one.
func (s *Store) Current() *reference.Snapshot { return s.current.Load() }

// LastError is the error of the last refused reload, nil after a successful one.
func (s *Store) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// OnChange registers f to be called, from the reloading goroutine, with each new snapshot
// right after it is swapped in and before the reload counts as done (the enricher compiles
// its table there, and hands the data to the ClickHouse loader), and once now with the
// current one.
func (s *Store) OnChange(f func(*reference.Snapshot)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, f)
	s.mu.Unlock()
	f(s.Current())
}

// Reload reads the reference files again. A version that fails to load is refused (the error
// says which file, line and column) and the current one stays; an identical version is not
// swapped.
func (s *Store) Reload() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := reference.Load(s.source)
	if err != nil {
		s.metrics.reloads.WithLabelValues(ResultError).Inc()
		s.lastErr = fmt.Errorf("reference data in %s refused, version %s stays in use: %w", s.describe(), s.Current().Version(), err)
		return ResultError, s.lastErr
	}
	s.lastErr = nil
	s.metrics.duration.Observe(snap.LoadDuration().Seconds())
	if snap.Version() == s.Current().Version() {
		s.metrics.reloads.WithLabelValues(ResultUnchanged).Inc()
		return ResultUnchanged, nil
	}
	old := s.Current()
	s.install(snap)
	for _, f := range s.listeners {
		f(snap)
	}
	s.metrics.reloads.WithLabelValues(ResultOK).Inc()
	s.metrics.info.DeleteLabelValues(old.Version())
	st := snap.Stats()
	s.logger.Info("reference data reloaded", zap.String("version", snap.Version()), zap.String("previous", old.Version()),
		zap.Duration("load", snap.LoadDuration()), zap.Int("facilities", st.Facilities), zap.Int("sensors", st.Sensors),
		zap.Int("tacs", st.TACs), zap.Int("operators", st.Operators))
	return ResultOK, nil
}

func (s *Store) install(snap *reference.Snapshot) {
	s.current.Store(snap)
	st := snap.Stats()
	s.metrics.info.WithLabelValues(snap.Version()).Set(1)
	s.metrics.entries.WithLabelValues("facilities").Set(float64(st.Facilities))
	s.metrics.entries.WithLabelValues("sensors").Set(float64(st.Sensors))
	s.metrics.entries.WithLabelValues("tacs").Set(float64(st.TACs))
	s.metrics.entries.WithLabelValues("operators").Set(float64(st.Operators))
	s.metrics.lastOK.SetToCurrentTime()
}

func (s *Store) describe() string {
	if s.dir == "" {
		return "the embedded default"
	}
	return s.dir
}

// Run reloads, when the data comes from a directory, on changes to it, until ctx ends.
// Bursts of file events (an editor saving, several files copied) are coalesced: the reload
// runs once the directory has been quiet for debounce. SIGHUP is not handled here (the
// service skeleton owns the process's signals and calls Reload).
func (s *Store) Run(ctx context.Context, debounce time.Duration) error {
	var events chan fsnotify.Event
	var errs chan error
	if s.dir != "" {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("watch reference directory: %w", err)
		}
		defer w.Close()
		// Watch the directory, not the files: tools replace files by renaming (and
		// Kubernetes swaps a symlinked folder), which a watch on the old file misses.
		if err := w.Add(s.dir); err != nil {
			return fmt.Errorf("watch reference directory %s: %w", s.dir, err)
		}
		events, errs = w.Events, w.Errors
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	reload := func(cause string) {
		result, err := s.Reload()
		if err != nil {
			s.logger.Error("reference reload refused", zap.String("cause", cause), zap.Error(err))
			return
		}
		s.logger.Debug("reference reload", zap.String("cause", cause), zap.String("result", result))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return errors.New("reference directory watch closed")
			}
			if s.relevant(ev) {
				timer.Reset(debounce)
			}
		case err, ok := <-errs:
			if !ok {
				return errors.New("reference directory watch closed")
			}
			s.logger.Warn("reference directory watch", zap.Error(err))
		case <-timer.C:
			reload("file_change")
		}
	}
}

// relevant ignores events on files that are not reference files (editor swap files), except
// for folder swaps such as Kubernetes' ..data symlink.
func (s *Store) relevant(ev fsnotify.Event) bool {
	if ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
		return false
	}
	base := filepath.Base(ev.Name)
	return slices.Contains(reference.Files, base) || base == "..data"
}
