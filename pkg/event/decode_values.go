package event

// Field values: strings (interned), numbers, booleans and RFC 3339 times, each error naming
// its field.

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"
)

func (d *Decoder) fail(field string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", field, err)
	}
}

func (d *Decoder) object(field string, v *fastjson.Value) *fastjson.Object {
	o, err := v.Object()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	return o
}

// str returns v's string; repeated values (intern) share one allocation.
func (d *Decoder) str(field string, v *fastjson.Value, intern bool) string {
	b, err := v.StringBytes()
	if err != nil {
		d.fail(field, err)
		return ""
	}
	switch {
	case d.view:
		return unsafe.String(unsafe.SliceData(b), len(b))
	case !intern:
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= maxInterned {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

func (d *Decoder) float(field string, v *fastjson.Value) *float64 {
	f, err := v.Float64()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.nf < len(d.floats) {
		d.floats[d.nf] = f
		d.nf++
		return &d.floats[d.nf-1]
	}
	return &f
}

func (d *Decoder) int(field string, v *fastjson.Value) *int64 {
	if v.Type() != fastjson.TypeNumber {
		d.fail(field, errors.New("not a number"))
		return nil
	}
	i, err := v.Int64()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.ni < len(d.ints) {
		d.ints[d.ni] = i
		d.ni++
		return &d.ints[d.ni-1]
	}
	return &i
}

func (d *Decoder) bool(field string, v *fastjson.Value) *bool {
	b, err := v.Bool()
	if err != nil {
		d.fail(field, err)
		return nil
	}
	if d.view && d.nb < len(d.bools) {
		d.bools[d.nb] = b
		d.nb++
		return &d.bools[d.nb-1]
	}
	return &b
}

func (d *Decoder) time(field string, v *fastjson.Value) Time {
	b, err := v.StringBytes()
	if err != nil {
		d.fail(field, err)
		return Time{}
	}
	t, err := parseTime(b)
	if err != nil {
		d.fail(field, err)
	}
	return Time{Time: t}
}

// parseTime reads the contract's layout (2006-01-02T15:04:05.000Z) without time.Parse,
// and any other RFC 3339 timestamp with it, as Time does.
func parseTime(b []byte) (time.Time, error) {
	if len(b) == len(TimeLayout) && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' &&
		b[16] == ':' && b[19] == '.' && b[23] == 'Z' {
		year, ok1 := digits(b[0:4])
		month, ok2 := digits(b[5:7])
		day, ok3 := digits(b[8:10])
		hour, ok4 := digits(b[11:13])
		minute, ok5 := digits(b[14:16])
		sec, ok6 := digits(b[17:19])
		ms, ok7 := digits(b[20:23])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && month >= 1 && month <= 12 && day >= 1 &&
			day <= daysIn(month, year) && hour < 24 && minute < 60 && sec < 60 {
			return time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timestamp: %w", err)
	}
	return t.UTC(), nil
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// isEnrichmentKey reports whether k is a field of Enrichment, which a raw event does not have.
func isEnrichmentKey(k string) bool {
	switch k {
	case "device_key", "enriched_at", "facility_id", "facility_name", "facility_type", "disp", "region_code",
		"department_code", "department_name", "facility_lat", "facility_lon", "building", "zone_type",
		"sensor_type", "vendor", "manufacturer", "model", "mini_phone", "operator", "brand", "country":
		return true
	}
	return false
}
