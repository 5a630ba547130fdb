package rules

import "time"

// Needs is the history of a facility's data that the rule's claims need, and how it is
// derived: a facility counts for the rule at the step ending at t only once its data
// starts at or before t minus it (it is "covered"); until then its rows make no claim
// (services/correlator README, "No claim without history").
//
//   - new_term: window + history ("unseen for 180 days" needs the 180 days before the
//     window, and the window);
//   - value_count with a baseline (growth): window + baseline.window (new facilities are
//     those where the group was not seen during the baseline);
//   - baseline_threshold: baseline.window (a facility without its baseline would be
//     compared with zeros);
//   - sequence with a new_term step: the step's history (a device is new to a facility
//     only if the facility reported during that history);
//   - otherwise none: a count over a window the data covers only in part can only count
//     less, never claim more.
//
// needs_history in the rule file replaces the derived value.
func (r *Rule) Needs() (time.Duration, string) {
	if r.NeedsHistory != nil {
		return *r.NeedsHistory, "needs_history"
	}
	return r.derivedNeed()
}

func (r *Rule) derivedNeed() (time.Duration, string) {
	if r.Mode != Scheduled {
		return 0, "streaming: no history"
	}
	switch {
	case r.Type == NewTerm:
		return r.Window + r.History, "window " + FormatDuration(r.Window) + " + history " + FormatDuration(r.History)
	case r.Type == ValueCount && r.Growth != nil:
		return r.Window + r.BaselineWindow, "window " + FormatDuration(r.Window) + " + baseline " + FormatDuration(r.BaselineWindow)
	case r.Type == BaselineThreshold:
		return r.BaselineWindow, "baseline " + FormatDuration(r.BaselineWindow)
	case r.Then.NewTerm != nil:
		return r.Then.NewTerm.History, "then.new_term.history " + FormatDuration(r.Then.NewTerm.History)
	}
	return 0, "a count over a partial window can only undercount"
}
