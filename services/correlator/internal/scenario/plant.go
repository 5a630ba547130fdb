package scenario

import (
	"fmt"
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
)

// Planted is a pattern's events and the alerts it must raise.
type Planted struct {
	Events []event.Enriched
	Expect []Expect
}

func (p *Planted) add(es ...event.Enriched) { p.Events = append(p.Events, es...) }

func ids(fs ...*reference.Facility) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return sortedCopy(out)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// MultiSite: one device at facility a, then three days later at b.
func (g *Gen) MultiSite(a, b *reference.Facility, t time.Time) Planted {
	d := g.NewDevice(CommonTACs[0])
	var p Planted
	p.add(g.Radio(event.KindMASAttach, d, a, t), g.Radio(event.KindCallAttempt, d, a, t.Add(time.Hour)),
		g.Radio(event.KindMASAttach, d, b, t.Add(72*time.Hour)), g.Radio(event.KindSMSAttempt, d, b, t.Add(73*time.Hour)))
	p.Expect = []Expect{{Rule: "DEVICE_MULTI_SITE", GroupKey: d.IMEI, Facilities: ids(a, b)}}
	return p
}

// ImpossibleTravel: one IMEI at two facilities more than 100 km apart 30 minutes apart.
func (g *Gen) ImpossibleTravel(t time.Time) Planted {
	a, b := g.FarApart(150)
	d := g.NewDevice(CommonTACs[1])
	clone := d
	clone.IMSI = g.hex() // the clone has its own SIM
	var p Planted
	p.add(g.Radio(event.KindMASAttach, d, a, t), g.Radio(event.KindMASAttach, clone, b, t.Add(30*time.Minute)))
	p.Expect = []Expect{
		{Rule: "IMPOSSIBLE_TRAVEL", GroupKey: d.IMEI, Facilities: ids(a, b)},
		{Rule: "DEVICE_MULTI_SITE", GroupKey: d.IMEI, Facilities: ids(a, b)},
	}
	return p
}

// SimChurn: one handset with three SIMs over two days at facility f.
func (g *Gen) SimChurn(f *reference.Facility, t time.Time) Planted {
	d := g.NewDevice(CommonTACs[2])
	var p Planted
	for i := 0; i < 3; i++ {
		di := d
		di.IMSI = g.hex()
		p.add(g.Radio(event.KindMASAttach, di, f, t.Add(time.Duration(i)*20*time.Hour)))
	}
	p.Expect = []Expect{{Rule: "SIM_CHURN", GroupKey: d.IMEI, Facilities: ids(f)}}
	return p
}

// SeizedResurrection: a phone seen, seized, and seen again two hours later.
func (g *Gen) SeizedResurrection(f *reference.Facility, t time.Time) Planted {
	d := g.NewDevice(CommonTACs[3])
	var p Planted
	p.add(g.Radio(event.KindMASAttach, d, f, t), g.Seized(d, f, t.Add(time.Hour)),
		g.Radio(event.KindMASAttach, d, f, t.Add(3*time.Hour)))
	p.Expect = []Expect{{Rule: "SEIZED_RESURRECTION", GroupKey: d.IMEI, Facilities: ids(f)}}
	return p
}

// SharedSIM: one SIM in three handsets at facility f within three hours.
func (g *Gen) SharedSIM(f *reference.Facility, t time.Time) Planted {
	sim := g.hex()
	var p Planted
	for i := 0; i < 3; i++ {
		d := g.NewDevice(CommonTACs[i])
		d.IMSI = sim
		p.add(g.Radio(event.KindMASAttach, d, f, t.Add(time.Duration(i)*time.Hour)))
	}
	p.Expect = []Expect{{Rule: "SIM_CHURN_SHARED_SIM", GroupKey: sim, Facilities: ids(f)}}
	return p
}

// TACSpread: 12 devices of one rare model over the facilities fs (6 or more: new to the
// model) within 6 days, one every 12 hours. history is a time within NEW_TAC_NATIONAL's 180
// days before t where the model was once seen (outside TAC_SPREAD's baseline), so that it
// is not also a new model.
func (g *Gen) TACSpread(tac string, fs []*reference.Facility, t, history time.Time) Planted {
	var p Planted
	for i := 0; i < 12; i++ {
		f := fs[i%len(fs)]
		p.add(g.Radio(event.KindMASAttach, g.NewDevice(tac), f, t.Add(time.Duration(i)*12*time.Hour)))
	}
	p.add(g.Radio(event.KindMASAttach, g.NewDevice(tac), fs[0], history))
	p.Expect = []Expect{{Rule: "TAC_SPREAD", GroupKey: tac, Facilities: ids(fs...)}}
	return p
}

// BatchRange: 6 devices of one rare model from one serial block at 3 facilities within 10
// days (one every 2 days). history is a time before BATCH_RANGE's baseline where the model
// was once seen (not a new model either).
func (g *Gen) BatchRange(tac, block string, fs []*reference.Facility, t, history time.Time) Planted {
	var p Planted
	for i := 0; i < 6; i++ {
		p.add(g.Radio(event.KindCallAttempt, g.NewDeviceInBlock(tac, block), fs[i%3], t.Add(time.Duration(i)*2*24*time.Hour)))
	}
	p.add(g.Radio(event.KindMASAttach, g.NewDevice(tac), fs[0], history))
	p.Expect = []Expect{{Rule: "BATCH_RANGE", GroupKey: fmt.Sprintf("tac=%s,serial_block=%s", tac, block), Facilities: ids(fs[:3]...)}}
	return p
}

// NewTAC: a model never seen before, at two facilities two days apart.
func (g *Gen) NewTAC(tac string, a, b *reference.Facility, t time.Time) Planted {
	var p Planted
	p.add(g.Radio(event.KindMASAttach, g.NewDevice(tac), a, t), g.Radio(event.KindMASAttach, g.NewDevice(tac), b, t.Add(48*time.Hour)))
	p.Expect = []Expect{{Rule: "NEW_TAC_NATIONAL", GroupKey: tac, Facilities: ids(a, b)}}
	return p
}

// DroneThenNewDevice: a drone at f, then from two hours later three devices f has never
// seen, in its cell blocks, 20 minutes apart.
func (g *Gen) DroneThenNewDevice(f *reference.Facility, t time.Time) Planted {
	var p Planted
	p.add(g.Drone(f, t))
	for i := 0; i < 3; i++ {
		p.add(g.Radio(event.KindMASAttach, g.NewDevice(CommonTACs[i]), f, t.Add(2*time.Hour+time.Duration(i)*20*time.Minute)))
	}
	p.Expect = []Expect{{Rule: "DRONE_THEN_NEW_DEVICE", GroupKey: f.ID, Facilities: ids(f)}}
	return p
}

// SyncBurst: at facilities fs, in the 10-minute bucket starting at bucket, 30 call and SMS
// attempts each, by the facility's resident devices.
func (g *Gen) SyncBurst(fs []*reference.Facility, residents map[string][]Device, bucket time.Time) Planted {
	var p Planted
	for _, f := range fs {
		ds := residents[f.ID]
		for i := 0; i < 30; i++ {
			kind := event.KindCallAttempt
			if i%3 == 0 {
				kind = event.KindSMSAttempt
			}
			p.add(g.Radio(kind, ds[i%len(ds)], f, bucket.Add(time.Duration(i)*15*time.Second)))
		}
	}
	p.Expect = []Expect{{Rule: "SYNC_BURST", GroupKey: "national", Facilities: ids(fs...)}}
	return p
}

// SearchMiss: a device active in its zone three hours before a search of that zone that
// found nothing, and seen again five hours after it.
func (g *Gen) SearchMiss(f *reference.Facility, t time.Time) Planted {
	d := g.NewDevice(CommonTACs[1])
	d.Zone = "S-9" // a cell of its own: no resident device is active there
	var p Planted
	search := g.Seized(Device{}, f, t.Add(3*time.Hour))
	search.Zone = d.Zone
	p.add(g.Radio(event.KindMASAttach, d, f, t), search, g.Radio(event.KindCallAttempt, d, f, t.Add(8*time.Hour)))
	p.Expect = []Expect{{Rule: "SEARCH_MISS", GroupKey: d.IMEI, Facilities: ids(f)}}
	return p
}
