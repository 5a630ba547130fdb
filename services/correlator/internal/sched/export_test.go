package sched

import (
	"context"
	"time"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// Finding is a group's finding as the query of an aggregate rule (value_count, new_term,
// event_count) computes it, evidence included, before it becomes an alert.
type Finding struct {
	Key                  string
	N                    uint64
	Distinct             []uint64
	First, Last          time.Time
	Facilities, Evidence []string
}

// Findings runs the query of aggregate rule r for the step ending at end.
func (s *Scheduler) Findings(ctx context.Context, r *rules.Rule, end time.Time) ([]Finding, error) {
	res, err := s.aggregate(ctx, r, end)
	out := make([]Finding, len(res))
	for i, x := range res {
		out[i] = Finding{Key: x.key, N: x.n, Distinct: x.distinct, First: x.first, Last: x.last, Facilities: x.facilities, Evidence: x.evidence}
	}
	return out, err
}

// SetEvidenceBatch bounds the findings per evidence query and the (finding, day) pairs
// listed in one, to test the batching and the fallback to a batch's overall days.
func (s *Scheduler) SetEvidenceBatch(groups, tuples int) {
	s.evidenceGroups, s.evidenceTuples = groups, tuples
}

// SetSkipping turns the pre-check on or off (off: every window is evaluated).
func (s *Scheduler) SetSkipping(on bool) { s.skip = on }

// OnEvaluate makes f see each step evaluated, in order.
func (s *Scheduler) OnEvaluate(f func(rule string, end time.Time)) { s.onEvaluate = f }
