package traffic

// The facts each correlation rule is meant to report (issue #14's semantics), computed in Go
// over generated events, so that the generator's claims are tested without the pipeline:
// the background has none, each plant has its rule's, each decoy has none. Where a rule's
// exact phrasing is open, the check takes the more sensitive reading.

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/services/simulator/internal/world"
)

// fact is one thing a rule would report: the rule, when it became true (for a daily rule, the
// end of the day it is evaluated on), its facilities, and what it is about (a device, a SIM,
// a TAC, a TAC and serial block; empty for a burst).
type fact struct {
	rule       string
	at         time.Time
	facilities []string
	key        string
	// size is the count that reached the threshold (facilities, devices, SIMs, handsets).
	size int
}

func (f fact) String() string {
	return fmt.Sprintf("%s %s at %s (%d) %v", f.rule, f.key, f.at.Format("2006-01-02 15:04"), f.size, f.facilities)
}

// observation is one event as the rules see it.
type observation struct {
	t          time.Time
	kind       event.Kind
	fac, zone  string
	imei, imsi string
	seizure    *event.Seizure
}

func (o observation) device() string {
	if o.imei != "" {
		return o.imei[:14]
	}
	return o.imsi
}

func attempt(k event.Kind) bool {
	return k == event.KindMASAttach || k == event.KindCallAttempt || k == event.KindSMSAttempt || k == event.KindDataAttempt
}

// limits are the rules' thresholds.
type limits struct {
	multiSiteWindow  time.Duration // DEVICE_MULTI_SITE
	travelKm         float64       // IMPOSSIBLE_TRAVEL
	sims, handsets   int           // SIM_CHURN, SIM_CHURN_SHARED_SIM
	resurrectionGap  time.Duration // SEIZED_RESURRECTION
	missWindow       time.Duration // SEARCH_MISS
	newAfterDrone    int           // DRONE_THEN_NEW_DEVICE
	burstFacilities  int           // SYNC_BURST
	spreadFacilities int           // TAC_SPREAD
	batchDevices     int           // BATCH_RANGE
	newTACWindow     time.Duration // NEW_TAC_NATIONAL
	newTACHistory    time.Duration
}

// rules are the shipped thresholds; nearMiss those just under them, where each decoy is.
var (
	rules    = limits{14 * day, 100, 3, 3, time.Hour, 72 * time.Hour, 2, 5, 5, 5, 7 * day, 180 * day}
	nearMiss = limits{16 * day, 80, 2, 2, 45 * time.Minute, 84 * time.Hour, 1, 4, 4, 4, 10 * day, 7 * day}
)

// maxima are the largest counts the background reached below each threshold.
type maxima map[string]int

func (m maxima) note(rule string, n int) {
	if n > m[rule] {
		m[rule] = n
	}
}

// facts computes every rule's facts over events sorted by time, from start.
func facts(w *world.World, evs []event.Detector, start time.Time, l limits) ([]fact, maxima) {
	obs := make([]observation, 0, len(evs))
	for i := range evs {
		e := &evs[i]
		if e.RSSIdBm != nil && *e.RSSIdBm < -200 {
			continue // refused by ingest
		}
		s, _ := w.Ref.Sensor(e.SensorID)
		obs = append(obs, observation{t: e.ObservedAt.Time, kind: e.Kind, fac: s.FacilityID, zone: e.Zone, imei: e.IMEI, imsi: e.IMSI, seizure: e.Seizure})
	}
	m := maxima{}
	var out []fact
	out = append(out, deviceFacts(w.Ref, obs, l, m)...)
	out = append(out, searchFacts(obs, l, m)...)
	out = append(out, droneFacts(obs, l, m)...)
	out = append(out, burstFacts(obs, start, l, m)...)
	out = append(out, modelFacts(obs, start, l, m)...)
	return out, m
}

// deviceFacts: DEVICE_MULTI_SITE (two facilities within 14 days), IMPOSSIBLE_TRAVEL (two
// facilities more than 100 km apart within an hour), SIM_CHURN (3 SIMs in a handset within 7
// days), SIM_CHURN_SHARED_SIM (a SIM in 3 handsets within 7 days), SEIZED_RESURRECTION (an
// attempt more than an hour after the device's seizure).
func deviceFacts(ref *reference.Snapshot, obs []observation, l limits, m maxima) []fact {
	var out []fact
	type state struct {
		lastAt map[string]time.Time // facility → last time
		peers  map[string]time.Time // SIM (or handset) → last time
		seized time.Time
		done   map[string]bool
	}
	devices, sims := map[string]*state{}, map[string]*state{}
	get := func(m map[string]*state, k string) *state {
		s := m[k]
		if s == nil {
			s = &state{lastAt: map[string]time.Time{}, peers: map[string]time.Time{}, done: map[string]bool{}}
			m[k] = s
		}
		return s
	}
	for _, o := range obs {
		dev := o.device()
		if dev == "" {
			continue
		}
		d := get(devices, dev)
		if o.kind == event.KindItemSeized {
			if o.imei != "" && d.seized.IsZero() {
				d.seized = o.t
			}
			continue
		}
		if !d.seized.IsZero() && attempt(o.kind) && !d.done[RuleSeizedResurrection] {
			gap := o.t.Sub(d.seized)
			if gap > l.resurrectionGap {
				d.done[RuleSeizedResurrection] = true
				out = append(out, fact{rule: RuleSeizedResurrection, at: o.t, facilities: []string{o.fac}, key: dev})
			} else {
				m.note(RuleSeizedResurrection+" (minutes)", int(gap.Minutes()))
			}
		}
		facs, far := 1, false
		for f, t := range d.lastAt {
			if f == o.fac {
				continue
			}
			if o.t.Sub(t) <= l.multiSiteWindow {
				facs++
			}
			if km, _ := ref.DistanceKm(f, o.fac); km > l.travelKm && o.t.Sub(t) <= time.Hour && o.imei != "" {
				far = true
			}
		}
		if facs >= 2 && !d.done[RuleDeviceMultiSite] {
			d.done[RuleDeviceMultiSite] = true
			out = append(out, fact{rule: RuleDeviceMultiSite, at: o.t, facilities: sortedKeys(d.lastAt, o.fac), key: dev, size: facs})
		}
		if far && !d.done[RuleImpossibleTravel] {
			d.done[RuleImpossibleTravel] = true
			out = append(out, fact{rule: RuleImpossibleTravel, at: o.t, facilities: sortedKeys(d.lastAt, o.fac), key: dev})
		}
		d.lastAt[o.fac] = o.t
		if o.imei == "" || o.imsi == "" {
			continue
		}
		s := get(sims, o.imsi)
		for _, c := range []struct {
			st         *state
			peer, rule string
			need       int
		}{{d, o.imsi, RuleSIMChurn, l.sims}, {s, dev, RuleSIMChurnSharedSIM, l.handsets}} {
			c.st.peers[c.peer] = o.t
			n := 0
			for _, t := range c.st.peers {
				if o.t.Sub(t) <= 7*day {
					n++
				}
			}
			if n >= c.need && !c.st.done[c.rule] {
				c.st.done[c.rule] = true
				key := dev
				if c.rule == RuleSIMChurnSharedSIM {
					key = o.imsi
				}
				out = append(out, fact{rule: c.rule, at: o.t, facilities: []string{o.fac}, key: key, size: n})
			} else if n < c.need {
				m.note(c.rule, n)
			}
		}
		s.lastAt[o.fac] = o.t
	}
	return out
}

func sortedKeys(m map[string]time.Time, extra string) []string {
	out := []string{extra}
	for k := range m {
		if k != extra {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// searchFacts: SEARCH_MISS, a device active in a zone in the 24 hours before a search of
// that zone that found nothing, seen again within 72 hours.
func searchFacts(obs []observation, l limits, m maxima) []fact {
	type key struct{ fac, zone string }
	byZone := map[key][]observation{}
	byDevice := map[string][]time.Time{}
	var misses []observation
	for _, o := range obs {
		if attempt(o.kind) && o.device() != "" {
			byZone[key{o.fac, o.zone}] = append(byZone[key{o.fac, o.zone}], o)
			byDevice[o.device()] = append(byDevice[o.device()], o.t)
		}
		if o.kind == event.KindItemSeized && o.seizure != nil && o.seizure.Phones+o.seizure.MiniPhones+o.seizure.SIMs == 0 {
			misses = append(misses, o)
		}
	}
	var out []fact
	for _, s := range misses {
		active := map[string]bool{}
		for _, o := range byZone[key{s.fac, s.zone}] {
			if !o.t.Before(s.t.Add(-24*time.Hour)) && o.t.Before(s.t) {
				active[o.device()] = true
			}
		}
		m.note(RuleSearchMiss+" (active before a search finding nothing)", len(active))
		for dev := range active {
			ts := byDevice[dev]
			i, _ := slices.BinarySearchFunc(ts, s.t, time.Time.Compare)
			for ; i < len(ts); i++ {
				if ts[i].After(s.t) {
					if ts[i].Sub(s.t) <= l.missWindow {
						out = append(out, fact{rule: RuleSearchMiss, at: ts[i], facilities: []string{s.fac}, key: dev})
					} else {
						m.note(RuleSearchMiss+" (hours to next sight)", int(ts[i].Sub(s.t).Hours()))
					}
					break
				}
			}
		}
	}
	return out
}

// droneFacts: DRONE_THEN_NEW_DEVICE, a drone over a facility, then within 6 hours two or more
// devices outside the visiting room that the facility had not seen before the drone's day.
// The maxima note a single new device too: the background has none.
func droneFacts(obs []observation, l limits, m maxima) []fact {
	type key struct{ fac, dev string }
	first := map[key]time.Time{}
	byFac := map[string][]observation{}
	for _, o := range obs {
		if o.device() != "" && attempt(o.kind) {
			if _, ok := first[key{o.fac, o.device()}]; !ok {
				first[key{o.fac, o.device()}] = o.t
			}
			if o.zone != "visiting" {
				byFac[o.fac] = append(byFac[o.fac], o)
			}
		}
	}
	var out []fact
	last := map[string]time.Time{}
	for _, o := range obs {
		if o.kind != event.KindDroneSeen || o.t.Sub(last[o.fac]) < time.Hour {
			continue // one flight, several sightings
		}
		last[o.fac] = o.t
		evs := byFac[o.fac]
		i, _ := slices.BinarySearchFunc(evs, o.t, func(e observation, t time.Time) int { return e.t.Compare(t) })
		news := map[string]time.Time{}
		for ; i < len(evs) && !evs[i].t.After(o.t.Add(6*time.Hour)); i++ {
			dev := evs[i].device()
			if _, seen := news[dev]; !seen && !first[key{o.fac, dev}].Before(o.t.Truncate(day)) {
				news[dev] = evs[i].t
			}
		}
		m.note(RuleDroneThenNewDevice+" (new devices after a drone)", len(news))
		if len(news) >= l.newAfterDrone {
			ts := make([]time.Time, 0, len(news))
			for _, t := range news {
				ts = append(ts, t)
			}
			slices.SortFunc(ts, time.Time.Compare)
			out = append(out, fact{rule: RuleDroneThenNewDevice, at: ts[l.newAfterDrone-1], facilities: []string{o.fac}, size: len(news)})
		}
	}
	return out
}

// burstFacts: SYNC_BURST, five or more facilities in the same 10-minute bucket each with at
// least 5 call and SMS attempts and more than their mean plus 3 standard deviations (at
// least 1) of the same hour's buckets over the 28 days before, from day 28 on.
func burstFacts(obs []observation, start time.Time, l limits, m maxima) []fact {
	const buckets = 6 * 24
	counts := map[string]map[int]int{} // facility → bucket index from start → count
	for _, o := range obs {
		if o.kind != event.KindCallAttempt && o.kind != event.KindSMSAttempt {
			continue
		}
		if counts[o.fac] == nil {
			counts[o.fac] = map[int]int{}
		}
		counts[o.fac][int(o.t.Sub(start)/(10*time.Minute))]++
	}
	above := map[int][]string{}
	for fac, cs := range counts {
		for b, n := range cs {
			if n < 5 || b < 28*buckets {
				continue
			}
			hour := b / 6 % 24
			var sum, sq float64
			for d := 1; d <= 28; d++ {
				for k := range 6 {
					c := float64(cs[(b/buckets-d)*buckets+hour*6+k])
					sum, sq = sum+c, sq+c*c
				}
			}
			mean := sum / 168
			sd := math.Sqrt(math.Max(sq/168-mean*mean, 0))
			if float64(n) > mean+3*math.Max(sd, 1) {
				above[b] = append(above[b], fac)
			}
		}
	}
	var out []fact
	for b, fs := range above {
		if len(fs) < l.burstFacilities {
			m.note(RuleSyncBurst+" (facilities above in one bucket)", len(fs))
		} else {
			slices.Sort(fs)
			out = append(out, fact{rule: RuleSyncBurst, at: start.Add(time.Duration(b+1) * 10 * time.Minute), facilities: fs, size: len(fs)})
		}
	}
	return out
}

// modelFacts, evaluated at the end of each day from day 28 on: TAC_SPREAD, a TAC seen at 5 or
// more facilities in the last 7 days where it was not seen in the 21 days before, at least
// half as many as the facilities it was seen at in those 21 days (growth against its own
// footprint: a popular model turns up at a few new facilities every week); BATCH_RANGE, 5 or
// more devices of one TAC and serial block seen in the last 14 days at 3 or more facilities
// where the block was not seen in the 28 days before, at least half as many as the TAC's
// facilities in those 28 days (the rule's growth is 1); NEW_TAC_NATIONAL, a TAC unseen for 180
// days, then at 2 or more facilities within 7 days (never in a shorter period: the maxima
// count the TACs first seen after day 28 at 2 facilities within 7 days, which a rule
// without the history would claim).
func modelFacts(obs []observation, start time.Time, l limits, m maxima) []fact {
	type sight struct {
		t           time.Time
		fac, device string
	}
	byTAC := map[string][]sight{}
	for _, o := range obs {
		if o.imei != "" {
			byTAC[o.imei[:8]] = append(byTAC[o.imei[:8]], sight{o.t, o.fac, o.imei[:14]})
		}
	}
	var out []fact
	tacs := make([]string, 0, len(byTAC))
	for t := range byTAC {
		tacs = append(tacs, t)
	}
	sort.Strings(tacs)
	days := 0
	for _, ss := range byTAC {
		days = max(days, int(ss[len(ss)-1].t.Sub(start)/day)+1)
	}
	for _, tac := range tacs {
		ss := byTAC[tac]
		done := map[string]bool{}
		// A TAC first seen after the history, at 2 facilities within the window.
		for _, history := range []time.Duration{l.newTACHistory, 28 * day} {
			if !ss[0].t.After(start.Add(history)) {
				continue
			}
			facs := map[string]bool{}
			for _, s := range ss {
				if s.t.Sub(ss[0].t) > l.newTACWindow {
					break
				}
				facs[s.fac] = true
				if len(facs) < 2 {
					continue
				}
				if history == l.newTACHistory {
					out = append(out, fact{rule: RuleNewTACNational, at: s.t, facilities: keys(facs), key: tac, size: 2})
				} else {
					const k = RuleNewTACNational + " (TACs new after day 28 at 2 facilities within the window, without the history)"
					m[k]++
				}
				break
			}
		}
		for e := 28; e <= days; e++ {
			end := start.Add(time.Duration(e) * day)
			recent, before := map[string]bool{}, map[string]bool{}
			for _, s := range ss {
				switch {
				case s.t.Before(end.Add(-28*day)) || !s.t.Before(end):
				case s.t.Before(end.Add(-7 * day)):
					before[s.fac] = true
				default:
					recent[s.fac] = true
				}
			}
			var fresh []string
			for f := range recent {
				if !before[f] {
					fresh = append(fresh, f)
				}
			}
			growing := 2*len(fresh) >= len(before)
			m.note(RuleTACSpread+" (new facilities of a TAC in 7 days, any footprint)", len(fresh))
			switch {
			case len(fresh) >= l.spreadFacilities && growing && !done[RuleTACSpread]:
				done[RuleTACSpread] = true
				slices.Sort(fresh)
				out = append(out, fact{rule: RuleTACSpread, at: end, facilities: fresh, key: tac, size: len(fresh)})
			case len(fresh) < l.spreadFacilities && growing:
				m.note(RuleTACSpread+" (new facilities of a growing TAC in 7 days)", len(fresh))
			}
			// The blocks seen in the last 14 days at facilities where the block was not seen in
			// the 28 days before, against the TAC's own footprint in those 28 days.
			footprint := map[string]bool{}
			blockBefore := map[string]map[string]bool{}
			blockNew := map[string]map[string]bool{} // block → devices at its new facilities
			blockFacs := map[string]map[string]bool{}
			for _, s := range ss {
				if !s.t.Before(end.Add(-42*day)) && s.t.Before(end.Add(-14*day)) {
					footprint[s.fac] = true
					add(blockBefore, s.device[8:11], s.fac)
				}
			}
			for _, s := range ss {
				if b := s.device[8:11]; !s.t.Before(end.Add(-14*day)) && s.t.Before(end) && !blockBefore[b][s.fac] {
					add(blockNew, b, s.device)
					add(blockFacs, b, s.fac)
				}
			}
			for b, devs := range blockNew {
				grows := 2*len(blockFacs[b]) >= len(footprint)
				switch {
				case len(devs) >= l.batchDevices && len(blockFacs[b]) >= 3 && grows && !done[RuleBatchRange+b]:
					done[RuleBatchRange+b] = true
					out = append(out, fact{rule: RuleBatchRange, at: end, facilities: keys(blockFacs[b]), key: tac + "/" + b, size: len(devs)})
				case len(devs) < l.batchDevices && len(blockFacs[b]) >= 3 && grows:
					m.note(RuleBatchRange+" (devices of a block at 3 new facilities, growing TAC)", len(devs))
				}
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
