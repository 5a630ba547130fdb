package pipeline

import (
	"strconv"
	"unicode/utf8"

	"github.com/vigie/vigie/pkg/event"
)

// scanDetector decodes a flat detector event (string and number values only, the shape of
// every radio attempt and RF burst) without reflection. It returns false — "ask the slow
// path" — for anything it does not read exactly like encoding/json would: nested values,
// null, booleans, escapes in strings, unknown keys, numbers of the wrong form. observedAt is
// the observed_at string as sent; d.ObservedAt is left unset.
func scanDetector(data []byte, d *event.Detector) (observedAt string, ok bool) {
	s := scanner{data: data}
	s.ws()
	if !s.byte('{') {
		return "", false
	}
	s.ws()
	if s.byte('}') {
		return "", s.end()
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return "", false
		}
		s.ws()
		if !s.byte(':') {
			return "", false
		}
		s.ws()
		if s.i >= len(s.data) {
			return "", false
		}
		if s.data[s.i] == '"' {
			v, ok := s.str()
			if !ok || v == "" {
				return "", false
			}
			switch key {
			case "event_id":
				d.EventID = v
			case "sensor_id":
				d.SensorID = v
			case "observed_at":
				observedAt = v
			case "kind":
				d.Kind = event.Kind(v)
			case "zone":
				d.Zone = v
			case "cell":
				d.Cell = v
			case "rat":
				d.RAT = event.RAT(v)
			case "band":
				d.Band = v
			case "outcome":
				d.Outcome = event.Outcome(v)
			case "imei":
				d.IMEI = v
			case "imsi":
				d.IMSI = v
			case "msisdn_dialed":
				d.MSISDNDialed = v
			default:
				return "", false
			}
		} else {
			num, isInt, ok := s.number()
			if !ok {
				return "", false
			}
			switch key {
			case "freq_mhz":
				d.FreqMHz, ok = parseFloat(num)
			case "rssi_dbm":
				d.RSSIdBm, ok = parseFloat(num)
			case "bandwidth_khz":
				d.BandwidthKHz, ok = parseFloat(num)
			case "duration_ms":
				d.DurationMs, ok = parseInt(num, isInt)
			case "data_bytes":
				d.DataBytes, ok = parseInt(num, isInt)
			default:
				return "", false
			}
			if !ok {
				return "", false
			}
		}
		s.ws()
		if s.byte(',') {
			continue
		}
		if s.byte('}') {
			return observedAt, s.end()
		}
		return "", false
	}
}

func parseFloat(s string) (*float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, false
	}
	return &f, true
}

func parseInt(s string, isInt bool) (*int64, bool) {
	if !isInt {
		return nil, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, false
	}
	return &n, true
}

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.data)
}

// str reads a string without escapes, of valid UTF-8 and no control characters.
func (s *scanner) str() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.i
	ascii := true
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			b := s.data[start:s.i]
			s.i++
			if !ascii && !utf8.Valid(b) {
				return "", false
			}
			return string(b), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		s.i++
	}
	return "", false
}

// number reads a JSON number (RFC 8259 grammar) and reports whether it is written as an
// integer (no fraction, no exponent).
func (s *scanner) number() (string, bool, bool) {
	start := s.i
	isInt := true
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.i < len(s.data) && s.data[s.i] >= '1' && s.data[s.i] <= '9':
		s.digits()
	default:
		return "", false, false
	}
	if s.byte('.') {
		isInt = false
		if s.digits() == 0 {
			return "", false, false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		isInt = false
		if !s.byte('+') {
			s.byte('-')
		}
		if s.digits() == 0 {
			return "", false, false
		}
	}
	return string(s.data[start:s.i]), isInt, true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}
