package event

import (
	"fmt"
	"math"

	"github.com/vigie/vigie/pkg/pseudonym"
)

// ToRaw replaces the clear identifiers of d by pseudonyms made with p and returns the event
// for detections.raw.v1, stamped with receivedAt. An identifier that does not have a valid
// form is an error (the ingest service validates the schema first, so it never sees one).
func (d *Detector) ToRaw(p *pseudonym.Pseudonymizer, receivedAt Time) (Raw, error) {
	r := Raw{Common: d.Common, ReceivedAt: receivedAt}
	if err := d.pseudonymise(p, &r.Pseudonyms); err != nil {
		return Raw{}, err
	}
	pseudonymiseText(p, &r)
	return r, nil
}

// OperatorGrid is the grid a drone operator's position is coarsened to, in degrees (about
// 1.1 km north-south, 0.75 km east-west in France): it still says from which side of a
// prison and how far a drone was flown, not the door of the person who flew it.
const OperatorGrid = 0.01

// pseudonymiseText replaces the identifiers that are not numbers: the drone's Remote ID and
// its operator's registration become pseudonyms, the operator's position is coarsened to
// OperatorGrid and their altitude dropped; an event_id holding a long digit run (a number
// of a person could hide in it) becomes "p-" and its pseudonym, the same for every resend.
func pseudonymiseText(p *pseudonym.Pseudonymizer, r *Raw) {
	if LongDigitRun(r.EventID) {
		r.EventID = "p-" + p.Text(pseudonym.LabelEventID, r.EventID)
		r.KeyVersion = p.KeyVersion()
	}
	if r.Drone == nil || r.Drone.RemoteID == nil {
		return
	}
	dr, rid := *r.Drone, *r.Drone.RemoteID
	rid.UASID = p.Text(pseudonym.LabelUASID, rid.UASID)
	if rid.OperatorID != "" {
		rid.OperatorID = p.Text(pseudonym.LabelOperatorID, rid.OperatorID)
	}
	rid.OperatorLat, rid.OperatorLon = coarse(rid.OperatorLat), coarse(rid.OperatorLon)
	rid.OperatorAltM = nil
	dr.RemoteID = &rid
	r.Drone = &dr
	r.KeyVersion = p.KeyVersion()
}

func coarse(v *float64) *float64 {
	if v == nil {
		return nil
	}
	c := math.Round(*v/OperatorGrid) * OperatorGrid
	c = math.Round(c*100) / 100
	return &c
}

func (d *Detector) pseudonymise(p *pseudonym.Pseudonymizer, out *Pseudonyms) error {
	if d.IMEI != "" {
		r, err := p.IMEI(d.IMEI)
		if err != nil {
			return fmt.Errorf("imei: %w", err)
		}
		out.IMEIPseudo, out.TAC, out.SerialBlock, out.IMEICheckOK, out.DeviceRoute = r.Pseudo, r.TAC, r.Block, r.CheckOK, r.Route
	}
	if d.IMSI != "" {
		r, err := p.IMSI(d.IMSI)
		if err != nil {
			return fmt.Errorf("imsi: %w", err)
		}
		out.IMSIPseudo, out.MCC, out.MNC = r.Pseudo, r.MCC, r.MNC
		if out.DeviceRoute == "" {
			out.DeviceRoute = r.Route // the IMSI is the device's identity (DeviceKey)
		}
	}
	if d.MSISDNDialed != "" {
		s, err := p.MSISDN(d.MSISDNDialed)
		if err != nil {
			return fmt.Errorf("msisdn_dialed: %w", err)
		}
		out.MSISDNPseudo = s
	}
	if out.IMEIPseudo != "" || out.IMSIPseudo != "" || out.MSISDNPseudo != "" {
		out.KeyVersion = p.KeyVersion()
	}
	return nil
}
