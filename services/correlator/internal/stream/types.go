package stream

import (
	"strconv"
	"strings"
	"time"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/correlator/internal/rules"
)

// valueCount is the value_count rule type: each distinct field has at least its minimum
// of distinct values within the window. Per value it remembers when it was first and last
// seen, its first event (evidence) and its last facility, so its memory is bounded by the
// number of distinct values within the window, not by the number of events, and by max per
// field: a new value beyond it is not tracked (refused counts it). max is at least each
// field's min, so a field at its cap holds its condition: the cap never hides a finding.
type valueCount struct {
	r       *rules.Rule
	max     int     // distinct values kept per field (0: no cap)
	refused *uint64 // sightings of values not tracked
}

type seenValue struct {
	value       string
	first, last int64
	firstEvent  string
	facility    string
}

type valueState struct {
	ep     *episode
	values [][]seenValue // per distinct condition
}

func (s *valueState) episode() **episode { return &s.ep }

func (s *valueState) holds() bool { return s.ep != nil || !allEmpty(s.values) }

func (s *valueState) size() int {
	n := b2i(s.ep != nil)
	for _, l := range s.values {
		n += len(l)
	}
	return n
}

func (s *valueState) latest() int64 {
	t := episodeTime(s.ep)
	for _, l := range s.values {
		for _, sv := range l {
			t = max(t, sv.last)
		}
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// episodeTime is the last evidence time of an open finding, ms (the earliest time if none).
func episodeTime(ep *episode) int64 {
	if ep == nil {
		return -1 << 63
	}
	return ep.alert.LastEvidenceAt.UnixMilli()
}

func (v *valueCount) rule() *rules.Rule { return v.r }

func (v *valueCount) observe(st state, e *observed) (state, *finding) {
	s, _ := st.(*valueState)
	if s == nil {
		s = &valueState{values: make([][]seenValue, len(v.r.Distinct))}
	}
	before := e.t - v.r.Window.Milliseconds()
	holds := true
	var capped []string
	var refused uint64
	for i, d := range v.r.Distinct {
		val := d.Field.Get(e.Enriched)
		list := s.values[i]
		if val != "" {
			found := false
			for j := range list {
				if list[j].value == val {
					sv := &list[j]
					if sv.last < before { // seen again after a gap: a new first sighting
						sv.first, sv.firstEvent = e.t, strings.Clone(e.EventID)
					}
					if e.t > sv.last {
						sv.last, sv.facility = e.t, e.facility
					}
					if e.t < sv.first {
						sv.first, sv.firstEvent = e.t, strings.Clone(e.EventID)
					}
					found = true
					break
				}
			}
			if !found && v.max > 0 && len(list) >= v.max {
				list = pruneValues(list, before) // room made by values out of the window
			}
			switch {
			case found:
			case v.max > 0 && len(list) >= v.max:
				refused++ // the field is at its cap: not tracked
			default:
				if d.Field.Name == "facility_id" {
					val = e.facility // interned
				} else {
					val = strings.Clone(val)
				}
				list = append(list, seenValue{value: val, first: e.t, last: e.t, firstEvent: strings.Clone(e.EventID), facility: e.facility})
			}
		}
		list = pruneValues(list, before)
		s.values[i] = list
		if len(list) < d.Min {
			holds = false
		}
		if v.max > 0 && len(list) >= v.max {
			capped = append(capped, d.Field.Name)
		}
	}
	*v.refused += refused
	if !holds {
		if s.ep == nil && allEmpty(s.values) {
			return nil, nil
		}
		return s, nil
	}
	f := &finding{at: e.t, first: e.t, last: e.t, values: map[string]string{}, capped: capped, refused: refused, cap: v.max}
	for i, d := range v.r.Distinct {
		f.values["distinct."+d.Field.Name] = strconv.Itoa(len(s.values[i]))
		for j := range s.values[i] {
			sv := &s.values[i][j]
			f.first = min(f.first, sv.first)
			f.last = max(f.last, sv.last)
			if n := len(f.facilities); n == 0 || f.facilities[n-1] != sv.facility { // buildAlert removes the other repeats
				f.facilities = append(f.facilities, sv.facility)
			}
			f.evidence = insertSmallest(f.evidence, sv.firstEvent, v.r.MaxEvidence)
		}
		if i == 0 {
			f.count = len(s.values[i])
		}
	}
	return s, f
}

func allEmpty(values [][]seenValue) bool {
	for _, l := range values {
		if len(l) > 0 {
			return false
		}
	}
	return true
}

func pruneValues(list []seenValue, before int64) []seenValue {
	w := 0
	for i := range list {
		if list[i].last >= before {
			if w != i { // no copy (nor write barriers) until a value goes
				list[w] = list[i]
			}
			w++
		}
	}
	clear(list[w:])
	return list[:w]
}

func (v *valueCount) evict(st state, before int64) state {
	s := st.(*valueState)
	empty := true
	for i := range s.values {
		s.values[i] = pruneValues(s.values[i], before)
		if len(s.values[i]) > 0 {
			empty = false
		}
	}
	if empty && s.ep == nil {
		return nil
	}
	return s
}

// eventCount is the event_count rule type: at least Threshold events within the window. It
// keeps the last Threshold events only: enough to decide.
type eventCount struct{ r *rules.Rule }

type seenEvent struct {
	t        int64
	id       string
	facility string
}

type countState struct {
	ep     *episode
	events []seenEvent // oldest first, at most Threshold
}

func (s *countState) episode() **episode { return &s.ep }

func (s *countState) holds() bool { return s.ep != nil || len(s.events) > 0 }

func (s *countState) size() int { return b2i(s.ep != nil) + len(s.events) }

func (s *countState) latest() int64 {
	t := episodeTime(s.ep)
	for _, ev := range s.events {
		t = max(t, ev.t)
	}
	return t
}

func (c *eventCount) rule() *rules.Rule { return c.r }

func (c *eventCount) observe(st state, e *observed) (state, *finding) {
	s, _ := st.(*countState)
	if s == nil {
		s = &countState{}
	}
	s.events = append(s.events, seenEvent{t: e.t, id: strings.Clone(e.EventID), facility: e.facility})
	if len(s.events) > c.r.Threshold {
		copy(s.events, s.events[1:])
		s.events = s.events[:c.r.Threshold]
	}
	before := e.t - c.r.Window.Milliseconds()
	n := 0
	f := &finding{at: e.t, first: e.t, last: e.t}
	for _, ev := range s.events {
		if ev.t >= before && ev.t <= e.t {
			n++
			f.first = min(f.first, ev.t)
			f.facilities = append(f.facilities, ev.facility)
			f.evidence = append(f.evidence, ev.id)
		}
	}
	if n < c.r.Threshold {
		return s, nil
	}
	f.count = n
	return s, f
}

func (c *eventCount) evict(st state, before int64) state {
	s := st.(*countState)
	w := 0
	for _, ev := range s.events {
		if ev.t >= before {
			s.events[w] = ev
			w++
		}
	}
	s.events = s.events[:w]
	if w == 0 && s.ep == nil {
		return nil
	}
	return s
}

// sequence is the sequence rule type: an event matching First, then one matching Then,
// within the window, at least MinGap apart, with Different fields differing and, when
// MinDistanceKm is set, facilities at least that far apart. It remembers the latest
// first-step event per combination of Different values (at most maxFirsts).
type sequence struct {
	r   *rules.Rule
	eng *Engine
}

const maxFirsts = 8

type firstEvent struct {
	t        int64
	id       string
	facility string
	diff     []string
	lat, lon float64
	coords   bool
}

type seqState struct {
	ep     *episode
	firsts []firstEvent
}

func (s *seqState) episode() **episode { return &s.ep }

func (s *seqState) holds() bool { return s.ep != nil || len(s.firsts) > 0 }

func (s *seqState) size() int { return b2i(s.ep != nil) + len(s.firsts) }

func (s *seqState) latest() int64 {
	t := episodeTime(s.ep)
	for _, x := range s.firsts {
		t = max(t, x.t)
	}
	return t
}

func (q *sequence) rule() *rules.Rule { return q.r }

func (q *sequence) observe(st state, e *observed) (state, *finding) {
	s, _ := st.(*seqState)
	isFirst := q.r.First.Where.Match(e.Enriched)
	isThen := q.r.Then.Where.Match(e.Enriched)
	if !isFirst && !isThen {
		return st, nil
	}
	if s == nil {
		s = &seqState{}
	}
	cur := q.describe(e)
	var f *finding
	if isThen {
		for i := len(s.firsts) - 1; i >= 0; i-- {
			if f = q.match(&s.firsts[i], &cur, e); f != nil {
				break
			}
		}
	}
	if isFirst {
		s.firsts = q.remember(s.firsts, cur, e.t)
	}
	return s, f
}

func (q *sequence) describe(e *observed) firstEvent {
	fe := firstEvent{t: e.t, id: strings.Clone(e.EventID), facility: e.facility}
	for _, d := range q.r.Different {
		v := d.Get(e.Enriched)
		if d.Name == "facility_id" {
			v = e.facility
		} else {
			v = strings.Clone(v)
		}
		fe.diff = append(fe.diff, v)
	}
	if q.r.MinDistanceKm > 0 {
		switch {
		case e.FacilityLat != nil && e.FacilityLon != nil:
			fe.lat, fe.lon, fe.coords = *e.FacilityLat, *e.FacilityLon, true
		case q.eng.ref != nil:
			if fac, ok := q.eng.ref.Facility(e.FacilityID); ok && fac.HasCoords {
				fe.lat, fe.lon, fe.coords = fac.Lat, fac.Lon, true
			}
		}
	}
	return fe
}

// match checks the pair (first, then) against the rule's constraints.
func (q *sequence) match(first, then *firstEvent, e *observed) *finding {
	gap := then.t - first.t
	if !q.r.Ordered && gap < 0 {
		gap = -gap
	}
	if gap < 0 || gap < q.r.MinGap.Milliseconds() || gap > q.r.Window.Milliseconds() || first.id == then.id {
		return nil
	}
	for i := range first.diff {
		if first.diff[i] == then.diff[i] {
			return nil
		}
	}
	f := &finding{
		at: e.t, first: min(first.t, then.t), last: max(first.t, then.t), count: 2,
		facilities: []string{first.facility, then.facility},
		evidence:   []string{first.id, then.id},
		values: map[string]string{
			"gap": rules.FormatGap(time.Duration(gap) * time.Millisecond), "first_facility": first.facility, "then_facility": then.facility,
		},
	}
	if q.r.MinDistanceKm > 0 {
		if !first.coords || !then.coords {
			return nil
		}
		km := reference.HaversineKm(first.lat, first.lon, then.lat, then.lon)
		if km < q.r.MinDistanceKm {
			return nil
		}
		f.values["distance_km"] = strconv.FormatFloat(km, 'f', 0, 64)
	}
	return f
}

// remember keeps fe as the latest first-step event for its Different values, drops those
// out of the window and keeps at most maxFirsts.
func (q *sequence) remember(list []firstEvent, fe firstEvent, now int64) []firstEvent {
	before := now - q.r.Window.Milliseconds()
	w := 0
	for _, x := range list {
		if x.t < before || sameValues(x.diff, fe.diff) && x.t <= fe.t {
			continue
		}
		list[w] = x
		w++
	}
	list = append(list[:w], fe)
	if len(list) > maxFirsts {
		list = append(list[:0], list[len(list)-maxFirsts:]...)
	}
	return list
}

func sameValues(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (q *sequence) evict(st state, before int64) state {
	s := st.(*seqState)
	w := 0
	for _, x := range s.firsts {
		if x.t >= before {
			s.firsts[w] = x
			w++
		}
	}
	s.firsts = s.firsts[:w]
	if w == 0 && s.ep == nil {
		return nil
	}
	return s
}
