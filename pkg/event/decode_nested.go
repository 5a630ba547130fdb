package event

// The nested objects of an event: drone, its Remote ID, jammer and seizure.

import "github.com/valyala/fastjson"

func (d *Decoder) drone(v *fastjson.Value) *Drone {
	o := d.object("drone", v)
	if o == nil {
		return nil
	}
	var dr Drone
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "detection_source":
			dr.DetectionSource = d.str("drone.detection_source", v, true)
		case "lat":
			dr.Lat = deref(d.float("drone.lat", v))
		case "lon":
			dr.Lon = deref(d.float("drone.lon", v))
		case "alt_m":
			dr.AltM = d.float("drone.alt_m", v)
		case "height_m":
			dr.HeightM = d.float("drone.height_m", v)
		case "speed_mps":
			dr.SpeedMps = d.float("drone.speed_mps", v)
		case "vertical_speed_mps":
			dr.VerticalSpeedMps = d.float("drone.vertical_speed_mps", v)
		case "heading_deg":
			dr.HeadingDeg = d.float("drone.heading_deg", v)
		case "remote_id":
			dr.RemoteID = d.remoteID(v)
		}
	})
	return &dr
}

func (d *Decoder) remoteID(v *fastjson.Value) *RemoteID {
	o := d.object("drone.remote_id", v)
	if o == nil {
		return nil
	}
	var r RemoteID
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "uas_id":
			r.UASID = d.str("drone.remote_id.uas_id", v, true)
		case "uas_id_type":
			r.UASIDType = d.str("drone.remote_id.uas_id_type", v, true)
		case "ua_type":
			r.UAType = d.str("drone.remote_id.ua_type", v, true)
		case "operational_status":
			r.OperationalStatus = d.str("drone.remote_id.operational_status", v, true)
		case "operator_id":
			r.OperatorID = d.str("drone.remote_id.operator_id", v, true)
		case "operator_lat":
			r.OperatorLat = d.float("drone.remote_id.operator_lat", v)
		case "operator_lon":
			r.OperatorLon = d.float("drone.remote_id.operator_lon", v)
		case "operator_alt_m":
			r.OperatorAltM = d.float("drone.remote_id.operator_alt_m", v)
		case "operator_location_type":
			r.OperatorLocationType = d.str("drone.remote_id.operator_location_type", v, true)
		}
	})
	return &r
}

func (d *Decoder) jammer(v *fastjson.Value) *Jammer {
	o := d.object("jammer", v)
	if o == nil {
		return nil
	}
	var j Jammer
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "jammer_id":
			j.JammerID = d.str("jammer.jammer_id", v, true)
		case "alarm":
			j.Alarm = d.str("jammer.alarm", v, true)
		case "severity":
			j.Severity = d.str("jammer.severity", v, true)
		case "bands":
			arr, err := v.Array()
			if err != nil {
				d.fail("jammer.bands", err)
				return
			}
			j.Bands = make([]string, 0, len(arr))
			for _, b := range arr {
				if b.Type() == fastjson.TypeNull {
					j.Bands = append(j.Bands, "") // as encoding/json does
					continue
				}
				j.Bands = append(j.Bands, d.str("jammer.bands[]", b, true))
			}
		}
	})
	return &j
}

func (d *Decoder) seizure(v *fastjson.Value) *Seizure {
	o := d.object("seizure", v)
	if o == nil {
		return nil
	}
	var s Seizure
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil || v.Type() == fastjson.TypeNull {
			return
		}
		switch string(k) {
		case "phones":
			s.Phones = deref(d.int("seizure.phones", v))
		case "mini_phones":
			s.MiniPhones = deref(d.int("seizure.mini_phones", v))
		case "sims":
			s.SIMs = deref(d.int("seizure.sims", v))
		case "accessories":
			s.Accessories = d.int("seizure.accessories", v)
		case "search_id":
			s.SearchID = d.str("seizure.search_id", v, true)
		case "found_by":
			s.FoundBy = d.str("seizure.found_by", v, true)
		}
	})
	return &s
}
