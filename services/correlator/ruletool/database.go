package ruletool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/sched"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// Database is an existing Vigie database (detections, rollups, facility coverage) the rules
// run on, read only.
type Database struct {
	Conn driver.Conn
	Name string
	// From and To bound the event time evaluated (zero: the first and last event of
	// detections): the scheduled rules' steps from From on, with the clock at To (as the
	// correlator's when its clock stood there); the streaming rules' events observed in
	// [From, To], their windows before From read to build their state.
	From, To time.Time
	// Logger, when set, receives the scheduler's and the replay's logs.
	Logger *zap.Logger
}

// errNoEvents: a database without detections has nothing to evaluate.
var errNoEvents = errors.New("the database has no detections")

// RunDatabase loads the rule files (an error if they do not: run Check) and evaluates them
// on db through the correlator's own engines, writing nothing: the scheduled rules as its
// scheduler would from an empty state (sched.Replay), the streaming rules over the events
// of detections in each partition's order (stream.Replay).
func RunDatabase(ctx context.Context, paths []string, db Database) (Result, error) {
	rs, err := load(paths)
	if err != nil {
		return Result{}, err
	}
	if db.From.IsZero() || db.To.IsZero() {
		first, last, err := extent(ctx, db)
		if err != nil {
			return Result{}, err
		}
		if db.From.IsZero() {
			db.From = first
		}
		if db.To.IsZero() {
			db.To = last.Add(time.Millisecond)
		}
	}
	if !db.To.After(db.From) {
		return Result{}, fmt.Errorf("to (%s) must be after from (%s)", db.To.UTC().Format(time.RFC3339), db.From.UTC().Format(time.RFC3339))
	}
	logger := db.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	ref, err := reference.Load(schemaref.FS)
	if err != nil {
		return Result{}, err
	}
	scheduled, err := sched.Replay(ctx, sched.DefaultConfig(), db.Conn, db.Name, rs, db.From, db.To, logger)
	if err != nil {
		return Result{}, fmt.Errorf("scheduled rules: %w", err)
	}
	streamed, n, err := stream.Replay(ctx, db.Conn, db.Name, rs, ref, stream.DefaultEngineConfig(), db.From, db.To)
	if err != nil {
		return Result{}, fmt.Errorf("streaming rules: %w", err)
	}
	res := Result{Events: n, From: db.From.UTC(), To: db.To.UTC()}
	var c collector
	c.add(streamed)
	c.add(scheduled.Alerts)
	res.Findings = c.found
	history := map[string]sched.History{}
	for _, h := range scheduled.Rules {
		history[h.Rule] = h
	}
	for _, r := range rs {
		x := Rule{ID: r.ID, Title: r.Title, Severity: r.Severity, Mode: string(r.Mode), GroupBy: fieldNames(r.GroupBy), Evaluated: true}
		x.Needs, x.NeedsWhy = r.Needs()
		if h, ok := history[r.ID]; ok {
			x.Coverage, x.Covered, x.Facilities, x.FirstCovered = true, h.Covered, h.Facilities, h.FirstCovered
		}
		res.Rules = append(res.Rules, x)
	}
	res.count()
	return res, nil
}

// extent is the first and last event time of db's detections.
func extent(ctx context.Context, db Database) (first, last time.Time, err error) {
	var n uint64
	q := fmt.Sprintf("SELECT count(), min(observed_at), max(observed_at) FROM `%s`.detections", db.Name)
	if err := db.Conn.QueryRow(ctx, q).Scan(&n, &first, &last); err != nil {
		return first, last, fmt.Errorf("read the extent of %s.detections: %w", db.Name, err)
	}
	if n == 0 {
		return first, last, fmt.Errorf("%s: %w", db.Name, errNoEvents)
	}
	return first.UTC(), last.UTC(), nil
}
