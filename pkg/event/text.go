package event

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// The text rules of detector-event.v1 beyond its JSON Schema: what a string from a detector
// may hold. The identifier fields (imei, imsi, msisdn_dialed) are pseudonymised; the drone's
// identifiers (uas_id, operator_id) too (ToRaw); every other string is a label — a zone, a
// cell, a band, a search or jammer id, an event id — and may hold no identifier: it is
// refused when it holds a run of more than MaxDigitRun digits (separators do not end a run,
// letters do), a control character or a replacement character (invalid UTF-8 or a lone
// surrogate, which decoders replace silently). An event_id is the exception: it is the
// sensor's identity of the event and is never refused for its digits, but pseudonymised
// (ToRaw) when it holds such a run.

// MaxDigitRun is the longest run of digits a label may hold: the shortest identifier Vigie
// protects, a national phone number, has 9 digits after its leading 0.
const MaxDigitRun = 8

// Codes of the field errors of the text rules.
const (
	TextIdentifier = "identifier_in_text" // a run of more than MaxDigitRun digits
	TextControl    = "control_character"  // a control character (C0, DEL, C1)
	TextInvalid    = "invalid_utf8"       // a replacement character: invalid UTF-8 or a lone surrogate
)

// CheckText applies the text rules to d's strings and returns one error per bad field.
func (d *Detector) CheckText() []FieldError {
	var out []FieldError
	check := func(ptr, s string, label bool) {
		if code := textProblem(s, label); code != "" {
			out = append(out, FieldError{Pointer: ptr, Reason: code})
		}
	}
	check("/event_id", d.EventID, false)
	check("/zone", d.Zone, true)
	check("/cell", d.Cell, true)
	check("/band", d.Band, true)
	if dr := d.Drone; dr != nil && dr.RemoteID != nil {
		check("/drone/remote_id/uas_id", dr.RemoteID.UASID, false)
		check("/drone/remote_id/operator_id", dr.RemoteID.OperatorID, false)
	}
	if j := d.Jammer; j != nil {
		check("/jammer/jammer_id", j.JammerID, true)
		for i, b := range j.Bands {
			check("/jammer/bands/"+strconv.Itoa(i), b, true)
		}
	}
	if s := d.Seizure; s != nil {
		check("/seizure/search_id", s.SearchID, true)
	}
	return out
}

// textProblem returns the code of what s may not hold ("" when nothing): control and
// replacement characters always, a long digit run when s is a label.
func textProblem(s string, label bool) string {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return TextInvalid
		case r < 0x20 || r >= 0x7f && r < 0xa0:
			return TextControl
		}
	}
	if label && LongDigitRun(s) {
		return TextIdentifier
	}
	return ""
}

// LongDigitRun reports whether s holds more than MaxDigitRun digits in a run: digits with
// anything but letters between them (" ", "-", ".", "_", "/", "(", …), so that
// "06 12 34 56 78" and "35-828802-104217-0" are one run each.
func LongDigitRun(s string) bool {
	run := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			run++
			if run > MaxDigitRun {
				return true
			}
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			run = 0
		case r > 0x7f:
			// Other scripts' digits (full-width, Arabic-Indic, …) count as digits; their
			// letters end a run like ours.
			if unicode.IsDigit(r) {
				run++
				if run > MaxDigitRun {
					return true
				}
			} else if unicode.IsLetter(r) {
				run = 0
			}
		}
	}
	return false
}
