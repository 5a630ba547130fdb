package event

import (
	"fmt"

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
	return r, nil
}

func (d *Detector) pseudonymise(p *pseudonym.Pseudonymizer, out *Pseudonyms) error {
	if d.IMEI != "" {
		r, err := p.IMEI(d.IMEI)
		if err != nil {
			return fmt.Errorf("imei: %w", err)
		}
		out.IMEIPseudo, out.TAC, out.IMEISerialPrefix, out.IMEICheckOK = r.Pseudo, r.TAC, r.SerialPrefix, r.CheckOK
	}
	if d.IMSI != "" {
		r, err := p.IMSI(d.IMSI)
		if err != nil {
			return fmt.Errorf("imsi: %w", err)
		}
		out.IMSIPseudo, out.MCC, out.MNC = r.Pseudo, r.MCC, r.MNC
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
