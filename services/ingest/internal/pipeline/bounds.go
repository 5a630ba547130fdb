package pipeline

import (
	"strconv"
	"time"

	"github.com/vigie/vigie/pkg/event"
)

// Codes of the events ingest refuses at the door although they match detector-event.v1:
// their time is out of bounds, or their identity is taken by other content. They are the
// codes of the events' entries in the answer and the reasons of their dead-letter records.
const (
	// CodeObservedAtInFuture: observed_at is later than the time of receipt plus the
	// allowed clock skew (HTTP 422).
	CodeObservedAtInFuture = event.ReasonObservedAtInFuture
	// CodeObservedAtBeyondRetention: observed_at is earlier than the time of receipt minus
	// the retention window; the event would be deleted on arrival (HTTP 422).
	CodeObservedAtBeyondRetention = event.ReasonObservedAtBeyondRetention
	// CodeEventIDConflict: the (sensor_id, event_id) was stored with other content; the
	// first version stays (HTTP 409).
	CodeEventIDConflict = event.ReasonEventIDConflict
)

// Bounds are the times ingest accepts: observed_at within [receipt − Retention,
// receipt + ClockSkew].
type Bounds struct {
	// ClockSkew is how far ahead of ingest's clock a sensor's clock may be (config key
	// clock_skew).
	ClockSkew time.Duration
	// Retention is how long detections are kept (config key retention; the detections
	// table's TTL): an older event would only be deleted.
	Retention time.Duration
}

// DefaultBounds are 5 minutes of skew and the 90 days of the detections TTL.
func DefaultBounds() Bounds {
	return Bounds{ClockSkew: event.ClockSkew, Retention: event.Retention}
}

// check returns the code and field error of an observed_at out of bounds at now, or "".
func (b Bounds) check(observedAt, now event.Time) (string, event.FieldError) {
	switch {
	case observedAt.After(now.Add(b.ClockSkew)):
		limit := event.NewTime(now.Add(b.ClockSkew))
		return CodeObservedAtInFuture, event.FieldError{Pointer: "/observed_at", Reason: "observed_at " + observedAt.String() +
			" is later than " + limit.String() + ", the time of receipt plus clock_skew (" + duration(b.ClockSkew) + "): check the sensor's clock"}
	case observedAt.Before(now.Add(-b.Retention)):
		limit := event.NewTime(now.Add(-b.Retention))
		return CodeObservedAtBeyondRetention, event.FieldError{Pointer: "/observed_at", Reason: "observed_at " + observedAt.String() +
			" is earlier than " + limit.String() + ", the time of receipt minus retention (" + duration(b.Retention) + "): detections older than that are not kept"}
	}
	return "", event.FieldError{}
}

// duration writes whole days as days (2160h is "90 days (2160h0m0s)").
func duration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + " days (" + d.String() + ")"
	}
	return d.String()
}

// Refuse turns an accepted outcome into a refusal with code and field error: the answer's
// entry, and its dead-letter record (allow-listed fields, no payload). fe may quote what the
// sensor sent (the answer's); the record has the pointer and the code.
func (p *Pipeline) Refuse(o Outcome, sensorID string, now event.Time, code string, fe event.FieldError) Outcome {
	o.Accepted, o.Raw = false, nil
	o.Code, o.Errors = code, []event.FieldError{fe}
	o.DLQ = p.deadLetter(o, sensorID, now, code, event.ReasonText(code), []event.FieldError{{Pointer: fe.Pointer, Reason: code}})
	return o
}
