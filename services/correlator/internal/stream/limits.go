package stream

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// StateConfig bounds a partition's streaming state (config block state). Event time bounds
// it first: what is older than a rule's window behind the watermark is evicted. These caps
// bound it whatever the events: one device seen with thousands of SIMs, or a flood of
// devices while the watermark stands still.
type StateConfig struct {
	// MaxValues bounds the distinct values a value_count rule keeps per field and device
	// within its window; a new value beyond it is not tracked (counted as overflow, and the
	// rule's finding says that the cap was reached). A rule whose min exceeds it is refused.
	MaxValues int `yaml:"max_values"`
	// MaxEvents bounds the events an event_count rule keeps per device (it keeps its last
	// threshold events: a rule whose threshold exceeds MaxEvents is refused).
	MaxEvents int `yaml:"max_events"`
	// MaxEntries bounds the entries one partition keeps across all its devices: a device,
	// a distinct value, an event, a first-step event, an open finding are one entry each.
	// Beyond it, the oldest entries (by event time) are forgotten early until a tenth of
	// the budget is free again (counted as overflow).
	MaxEntries int `yaml:"max_entries"`
}

// DefaultStateConfig keeps at most 256 distinct values per field, rule and device, 1,000
// events per rule and device, and 5 million entries per partition (about 145 B each on
// average: see the README).
func DefaultStateConfig() StateConfig {
	return StateConfig{MaxValues: 256, MaxEvents: 1000, MaxEntries: 5_000_000}
}

// Validate names the bad key.
func (c StateConfig) Validate(prefix string) error {
	switch {
	case c.MaxValues <= 0:
		return fmt.Errorf("%s.max_values: must be positive", prefix)
	case c.MaxEvents <= 0:
		return fmt.Errorf("%s.max_events: must be positive", prefix)
	case c.MaxEntries < 1000:
		return fmt.Errorf("%s.max_entries: must be at least 1000 (a device with every rule's state is up to several hundred)", prefix)
	}
	return nil
}

// Check reports each streaming rule of rs that needs more state per device than c allows
// (prefix is the config block's name, for the message): a value_count min above
// max_values, an event_count threshold above max_events. Such a rule could never fire.
func (c StateConfig) Check(prefix string, rs []*rules.Rule) error {
	var errs []error
	for _, r := range rs {
		if r.Mode != rules.Streaming {
			continue
		}
		switch r.Type {
		case rules.ValueCount:
			for i, d := range r.Distinct {
				if c.MaxValues > 0 && d.Min > c.MaxValues {
					errs = append(errs, fmt.Errorf("%s: rule %s: distinct[%d].min %d exceeds %s.max_values %d: lower the rule's min or raise %s.max_values",
						r.File, r.ID, i, d.Min, prefix, c.MaxValues, prefix))
				}
			}
		case rules.EventCount:
			if c.MaxEvents > 0 && r.Threshold > c.MaxEvents {
				errs = append(errs, fmt.Errorf("%s: rule %s: threshold %d exceeds %s.max_events %d: lower the rule's threshold or raise %s.max_events",
					r.File, r.ID, r.Threshold, prefix, c.MaxEvents, prefix))
			}
		}
	}
	return errors.Join(errs...)
}

// Overflow counts, for one rule, what the state caps kept out of its state.
type Overflow struct {
	// Values counts sightings of a value not tracked because its field had MaxValues
	// values for the device already.
	Values uint64
	// Budget counts entries forgotten before their window because the partition held
	// MaxEntries.
	Budget uint64
}

// shedFree is the share of MaxEntries an overflow of the budget frees (a tenth), so that
// the pass over every device it costs is paid once per MaxEntries/shedFree new entries.
const shedFree = 10

// shed frees entries when the partition holds more than MaxEntries: it evicts what the
// windows exclude and then, if that is not enough, the devices least recently seen (by the
// latest event time they hold) until a tenth of the budget is free, counting per rule the
// entries it forgot. A device seen since keeps its whole history: the budget narrows which
// devices are followed, not how far back. Like the rest of the state, this is a function
// of the events, so replaying them sheds the same (a rebuild, which reads only what the
// rules match, sweeps at other moments and may shed other devices).
func (e *Engine) shed() {
	e.sweep()
	target := e.cfg.State.MaxEntries - e.cfg.State.MaxEntries/shedFree
	if e.entries <= target {
		return
	}
	type age struct {
		latest int64
		size   int
	}
	ages := make([]age, 0, len(e.devices))
	for _, d := range e.devices {
		latest, size := d.age()
		ages = append(ages, age{latest, size})
	}
	slices.SortFunc(ages, func(a, b age) int { return cmp.Compare(a.latest, b.latest) })
	excess := e.entries - target
	cutoff := int64(-1 << 63)
	for _, a := range ages { // devices as old as the last one taken go too
		if excess <= 0 {
			break
		}
		excess -= a.size
		cutoff = a.latest + 1
	}
	for key, d := range e.devices {
		if latest, _ := d.age(); latest >= cutoff {
			continue
		}
		for i, s := range d.slots {
			if s != nil {
				n := s.size()
				e.stats.Overflow[i].Budget += uint64(n)
				e.entries -= n
			}
		}
		delete(e.devices, key)
		e.entries--
	}
	e.stats.Sheds++
}

// age is the latest event time the device's state holds (ms) and its entries (itself
// included).
func (d *device) age() (latest int64, size int) {
	latest, size = -1<<63, 1
	for _, s := range d.slots {
		if s != nil {
			latest = max(latest, s.latest())
			size += s.size()
		}
	}
	return latest, size
}
