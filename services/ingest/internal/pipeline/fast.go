package pipeline

import (
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// The fast path. Validating with the JSON Schema library costs about 80 µs per event on this
// schema (its nine cross-field rules each run a sub-validation), four times the whole budget
// of an event at 50,000 events/s per core. So the high-volume kinds (radio attempts and RF
// bursts) are first decoded into Go types and checked by compiled code; an event the fast
// path accepts is guaranteed valid against detector-event.v1 (a differential test and fuzz
// target check that), and every event it does not accept — invalid, unusual (null values,
// empty strings, integers written 1.0, keys in another case) or of a rare kind (drones,
// jammers, seizures) — goes through the schema library, which decides and explains.

// fastDecode returns the event and true when data is certainly a valid detector event of a
// high-volume kind; false means "ask the schema".
func fastDecode(data []byte) (event.Detector, bool) {
	var d event.Detector
	observedAt, ok := scanDetector(data, &d)
	if !ok || !observedAtOK(observedAt) {
		return event.Detector{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, observedAt)
	if err != nil {
		return event.Detector{}, false
	}
	d.ObservedAt = event.Time{Time: t}
	if !fastCheck(&d) {
		return event.Detector{}, false
	}
	return d, true
}

// observedAtOK checks the pattern ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$.
func observedAtOK(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:dd.dddZ"
	if len(s) != len(layout) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if layout[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != layout[i] {
			return false
		}
	}
	return true
}

// fastCheck mirrors detector-event.v1 for the radio kinds. It must never accept an event
// the schema rejects.
func fastCheck(d *event.Detector) bool {
	if d.Drone != nil || d.Jammer != nil || d.Seizure != nil {
		return false
	}
	if !idOK(d.EventID, true) || !idOK(d.SensorID, false) {
		return false
	}
	if len(d.Zone) > 64 || len(d.Cell) > 32 { // bytes >= runes: longer may still be valid
		return false
	}
	switch d.RAT {
	case "", event.RAT2G, event.RAT3G, event.RAT4G, event.RAT5G:
	default:
		return false
	}
	if d.Band != "" && !bandOK(d.Band) {
		return false
	}
	if d.FreqMHz != nil && (*d.FreqMHz <= 0 || *d.FreqMHz > 100000) {
		return false
	}
	if d.RSSIdBm != nil && (*d.RSSIdBm < -200 || *d.RSSIdBm > 50) {
		return false
	}
	switch d.Outcome {
	case "", event.OutcomeBlocked, event.OutcomeAllowed, event.OutcomeEmergencyAllowed, event.OutcomeUnknown:
	default:
		return false
	}
	if d.DurationMs != nil && (*d.DurationMs < 0 || *d.DurationMs > 86400000) {
		return false
	}
	if d.DataBytes != nil && (*d.DataBytes < 0 || *d.DataBytes > 1099511627776) {
		return false
	}
	if d.BandwidthKHz != nil && (*d.BandwidthKHz <= 0 || *d.BandwidthKHz > 1000000) {
		return false
	}
	if d.IMEI != "" && !digits(d.IMEI, 14, 16) {
		return false
	}
	if d.IMSI != "" && !digits(d.IMSI, 6, 15) {
		return false
	}
	if d.MSISDNDialed != "" && !msisdnOK(d.MSISDNDialed) {
		return false
	}
	if d.DataBytes != nil && d.Kind != event.KindDataAttempt {
		return false
	}
	if d.BandwidthKHz != nil && d.Kind != event.KindRFBurst {
		return false
	}
	if d.MSISDNDialed != "" && d.Kind != event.KindCallAttempt && d.Kind != event.KindSMSAttempt {
		return false
	}
	switch d.Kind {
	case event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt:
		return d.RAT != ""
	case event.KindRFBurst:
		return d.RSSIdBm != nil && (d.FreqMHz != nil || d.Band != "") && d.IMEI == "" && d.IMSI == ""
	default:
		return false
	}
}

// idOK checks event_id (^[A-Za-z0-9][A-Za-z0-9._:-]*$) or, when !upperAndColon, sensor_id
// (^[a-z0-9][a-z0-9._-]*$), both 1 to 64 characters.
func idOK(s string, eventID bool) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case eventID && c >= 'A' && c <= 'Z':
		case i > 0 && (c == '.' || c == '-' || c == '_'):
		case i > 0 && eventID && c == ':':
		default:
			return false
		}
	}
	return true
}

func bandOK(s string) bool {
	if len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func digits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// msisdnOK checks ^\+?[0-9][0-9 .()\-]*$ with 2 to 32 characters.
func msisdnOK(s string) bool {
	if len(s) < 2 || len(s) > 32 {
		return false
	}
	i := 0
	if s[0] == '+' {
		i = 1
	}
	if i >= len(s) || s[i] < '0' || s[i] > '9' {
		return false
	}
	for i++; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == ' ' || c == '.' || c == '(' || c == ')' || c == '-') {
			return false
		}
	}
	return true
}
