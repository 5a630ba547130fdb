package event

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON of r, byte for byte what json.Marshal(r) gives, without
// reflection: ingest encodes every accepted event, and reflection-based encoding was the
// largest cost of its hot path. It is EncodeRaw's encoder.
func (r *Raw) AppendJSON(b []byte) ([]byte, error) {
	b, err := r.appendFields(append(b, '{'))
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// AppendJSON appends the JSON of e, byte for byte what json.Marshal(e) gives, without
// reflection: the enricher encodes every event it forwards. It is EncodeEnriched's encoder.
func (e *Enriched) AppendJSON(b []byte) ([]byte, error) {
	b, err := e.Raw.appendFields(append(b, '{'))
	if err != nil {
		return nil, err
	}
	n := &e.Enrichment
	b = append(b, `,"device_key":`...)
	b = appendString(b, n.DeviceKey)
	b = append(b, `,"enriched_at":`...)
	b = appendTime(b, n.EnrichedAt)
	b = appendOptString(b, `,"facility_id":`, n.FacilityID)
	b = appendOptString(b, `,"facility_name":`, n.FacilityName)
	b = appendOptString(b, `,"facility_type":`, n.FacilityType)
	b = appendOptString(b, `,"disp":`, n.DISP)
	b = appendOptString(b, `,"region_code":`, n.RegionCode)
	b = appendOptString(b, `,"department_code":`, n.DepartmentCode)
	b = appendOptString(b, `,"department_name":`, n.DepartmentName)
	b = appendOptFloat(b, `,"facility_lat":`, n.FacilityLat)
	b = appendOptFloat(b, `,"facility_lon":`, n.FacilityLon)
	b = appendOptString(b, `,"building":`, n.Building)
	b = appendOptString(b, `,"zone_type":`, n.ZoneType)
	b = appendOptString(b, `,"sensor_type":`, n.SensorType)
	b = appendOptString(b, `,"vendor":`, n.Vendor)
	b = appendOptString(b, `,"manufacturer":`, n.Manufacturer)
	b = appendOptString(b, `,"model":`, n.Model)
	b = appendOptBool(b, `,"mini_phone":`, n.MiniPhone)
	b = appendOptString(b, `,"operator":`, n.Operator)
	b = appendOptString(b, `,"brand":`, n.Brand)
	b = appendOptString(b, `,"country":`, n.Country)
	return append(b, '}'), nil
}

// appendFields appends the fields of r (after the opening brace, without the closing one)
// in json.Marshal's order. The nested objects (drones, jammers, seizures; rare) go through
// json.Marshal.
func (r *Raw) appendFields(b []byte) ([]byte, error) {
	c := &r.Common
	b = append(b, `"event_id":`...)
	b = appendString(b, c.EventID)
	b = append(b, `,"sensor_id":`...)
	b = appendString(b, c.SensorID)
	b = append(b, `,"observed_at":`...)
	b = appendTime(b, c.ObservedAt)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(c.Kind))
	b = appendOptString(b, `,"zone":`, c.Zone)
	b = appendOptString(b, `,"cell":`, c.Cell)
	b = appendOptString(b, `,"rat":`, string(c.RAT))
	b = appendOptString(b, `,"band":`, c.Band)
	b = appendOptFloat(b, `,"freq_mhz":`, c.FreqMHz)
	b = appendOptFloat(b, `,"rssi_dbm":`, c.RSSIdBm)
	b = appendOptString(b, `,"outcome":`, string(c.Outcome))
	b = appendOptInt(b, `,"duration_ms":`, c.DurationMs)
	b = appendOptInt(b, `,"data_bytes":`, c.DataBytes)
	b = appendOptFloat(b, `,"bandwidth_khz":`, c.BandwidthKHz)
	var err error
	if c.Drone != nil {
		if b, err = appendMarshal(b, `,"drone":`, c.Drone); err != nil {
			return nil, err
		}
	}
	if c.Jammer != nil {
		if b, err = appendMarshal(b, `,"jammer":`, c.Jammer); err != nil {
			return nil, err
		}
	}
	if c.Seizure != nil {
		if b, err = appendMarshal(b, `,"seizure":`, c.Seizure); err != nil {
			return nil, err
		}
	}
	p := &r.Pseudonyms
	b = appendOptString(b, `,"key_version":`, p.KeyVersion)
	b = appendOptString(b, `,"imei_pseudo":`, p.IMEIPseudo)
	b = appendOptString(b, `,"tac":`, p.TAC)
	b = appendOptString(b, `,"serial_block":`, p.SerialBlock)
	b = appendOptBool(b, `,"imei_check_ok":`, p.IMEICheckOK)
	b = appendOptString(b, `,"imsi_pseudo":`, p.IMSIPseudo)
	b = appendOptString(b, `,"mcc":`, p.MCC)
	b = appendOptString(b, `,"mnc":`, p.MNC)
	b = appendOptString(b, `,"msisdn_pseudo":`, p.MSISDNPseudo)
	b = appendOptString(b, `,"device_route":`, p.DeviceRoute)
	b = append(b, `,"received_at":`...)
	b = appendTime(b, r.ReceivedAt)
	return b, nil
}

func appendMarshal(b []byte, key string, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(append(b, key...), j...), nil
}

func appendOptBool(b []byte, key string, v *bool) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendBool(append(b, key...), *v)
}

func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendOptFloat(b []byte, key string, f *float64) []byte {
	if f == nil {
		return b
	}
	return appendFloat(append(b, key...), *f)
}

func appendOptInt(b []byte, key string, n *int64) []byte {
	if n == nil {
		return b
	}
	return strconv.AppendInt(append(b, key...), *n, 10)
}

// appendFloat formats like encoding/json: shortest representation, exponent form only
// below 1e-6 or from 1e21, with a two-digit minimum exponent trimmed ("1e-07" → "1e-7").
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...) // never valid in the contract; json.Marshal would fail
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

// appendTime formats t in TimeLayout without time.Format's layout interpretation.
func appendTime(b []byte, t Time) []byte {
	u := t.UTC()
	year, month, day := u.Date()
	hour, min, sec := u.Clock()
	ms := u.Nanosecond() / 1e6
	if year < 0 || year > 9999 {
		j, _ := t.MarshalJSON()
		return append(b, j...)
	}
	b = append(b, '"')
	b = append4(b, year)
	b = append(b, '-')
	b = append2(b, int(month))
	b = append(b, '-')
	b = append2(b, day)
	b = append(b, 'T')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, min)
	b = append(b, ':')
	b = append2(b, sec)
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return b
}

func append2(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }
func append4(b []byte, n int) []byte {
	return append(b, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
}

const hexDigits = "0123456789abcdef"

// plain says which bytes appendString copies as they are: printable ASCII except the
// characters encoding/json escapes (", \\, <, >, &).
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString quotes s like encoding/json with HTML escaping (its default): <, >, & and
// control characters as \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	// Fast path: most strings of the contract (ids, pseudonyms, codes) need no escaping.
	i := 0
	for i < len(s) && plain[s[i]] {
		i++
	}
	if i == len(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b = append(b, '"')
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
