package sched

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vigie/vigie/pkg/reference"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// grown is a group a growth rule's first query found: its values, its facilities new to
// it in the window, and its footprint during the baseline.
type grown struct {
	values        []string
	newFacilities []string
	baseline      uint64
}

// growth evaluates a value_count rule with a growth baseline in two queries: growthQuery
// finds the groups that reached enough new facilities (keys and days only), then
// aggregateQuery counts their devices and events at those new facilities only, in batches
// of at most evidenceGroups groups and evidenceTuples (group, facility) pairs.
func (s *Scheduler) growth(ctx context.Context, r *rules.Rule, end time.Time) ([]result, error) {
	rows, err := s.conn.Query(ctx, growthQuery(s.db, r, end))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", r.ID, err)
	}
	defer rows.Close()
	var gs []grown
	for rows.Next() {
		g := grown{values: make([]string, len(r.GroupBy))}
		dest := make([]any, 0, len(g.values)+2)
		for i := range g.values {
			dest = append(dest, &g.values[i])
		}
		dest = append(dest, &g.newFacilities, &g.baseline)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan %s: %w", r.ID, err)
		}
		gs = append(gs, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", r.ID, err)
	}
	var out []result
	for len(gs) > 0 {
		n, pairs := 0, 0
		for n < len(gs) && n < s.evidenceGroups && (n == 0 || pairs+len(gs[n].newFacilities) <= s.evidenceTuples) {
			pairs += len(gs[n].newFacilities)
			n++
		}
		res, err := s.aggregateRows(ctx, r, aggregateQuery(s.db, r, end, pairsIn(r, gs[:n])))
		if err != nil {
			return nil, err
		}
		base := make(map[string]uint64, n)
		for _, g := range gs[:n] {
			base[rules.JoinGroupKey(r.GroupBy, g.values)] = g.baseline
		}
		for i := range res {
			res[i].baseline = base[res[i].key]
		}
		out = append(out, res...)
		gs = gs[n:]
	}
	return out, nil
}

// SetReference gives the scheduler the reference data its explanations name phone models
// with ({model}); without it, the data built into the binary.
func (s *Scheduler) SetReference(ref *reference.Snapshot) { s.ref.Store(ref) }

var (
	builtinOnce sync.Once
	builtinRef  *reference.Snapshot
)

// modelName is a TAC's manufacturer and model for an explanation, with the reference's
// mini-phone flag.
func (s *Scheduler) modelName(tac string) string {
	ref := s.ref.Load()
	if ref == nil {
		builtinOnce.Do(func() { builtinRef, _ = reference.Load(schemaref.FS) })
		ref = builtinRef
	}
	if ref == nil {
		return "model unknown"
	}
	m, ok := ref.Model(tac)
	if !ok {
		return "model not in the reference"
	}
	name := m.Manufacturer + " " + m.Model
	if m.Mini {
		name += ", mini-phone candidate"
	}
	return name
}
