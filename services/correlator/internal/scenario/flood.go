package scenario

import (
	"time"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
)

// ManySIMs: one handset seen at facility f with n SIMs, one every `every` from t (issue
// 16: one IMEI seen with 5,000 IMSIs). It raises one SIM_CHURN finding, whose state the
// correlator's caps bound.
func (g *Gen) ManySIMs(f *reference.Facility, t time.Time, n int, every time.Duration) Planted {
	d := g.NewDevice(CommonTACs[2])
	var p Planted
	for i := 0; i < n; i++ {
		di := d
		di.IMSI = g.hex()
		p.add(g.Radio(event.KindMASAttach, di, f, t.Add(time.Duration(i)*every)))
	}
	p.Expect = []Expect{{Rule: "SIM_CHURN", GroupKey: d.IMEI, Facilities: ids(f)}}
	return p
}
