package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The codecs of the contracts (see the package documentation): raw and enriched events on
// the hot path (append encoders in encode.go, the Decoder in decode.go), dead letters here,
// alerts in alert.go.

// EncodeRaw appends the JSON of r (detections.raw.v1) to b.
func EncodeRaw(b []byte, r *Raw) ([]byte, error) { return r.AppendJSON(b) }

// EncodeEnriched appends the JSON of e (detections.enriched.v1) to b.
func EncodeEnriched(b []byte, e *Enriched) ([]byte, error) { return e.AppendJSON(b) }

// EncodeDLQ returns the JSON of a dead-letter record (detections.dlq.v1): its allow-listed
// fields only (deadletter.go), whatever the caller filled in.
func EncodeDLQ(rec *DLQ) ([]byte, error) {
	out := rec.allowList()
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return b, nil
}

// DecodeDLQ decodes a dead-letter record and checks the fields its schema requires.
func DecodeDLQ(data []byte, rec *DLQ) error {
	*rec = DLQ{}
	// The timestamp is read as a string first so that a bad one is named.
	type plain DLQ
	var w struct {
		*plain
		FailedAt string `json:"failed_at"`
	}
	w.plain = (*plain)(rec)
	if err := unmarshal(data, &w); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := parseField("failed_at", w.FailedAt, &rec.FailedAt); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	switch {
	case rec.Reason == "":
		return fmt.Errorf("dead letter: reason: %w", ErrMissingField)
	case rec.Service == "":
		return fmt.Errorf("dead letter: service: %w", ErrMissingField)
	case rec.FailedAt.IsZero():
		return fmt.Errorf("dead letter: failed_at: %w", ErrMissingField)
	}
	return nil
}

// parseField parses the timestamp s of field name into t; an empty s leaves t zero.
func parseField(name, s string, t *Time) error {
	if s == "" {
		return nil
	}
	p, err := parseTime([]byte(s))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	t.Time = p
	return nil
}

// unmarshal decodes data into v with encoding/json and names the bad field in its errors
// ("source.partition: want int, got string"). Unknown fields are ignored (a newer producer
// may add some); trailing data is an error.
func unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: want %s, got %s", te.Field, te.Type, te.Value)
		}
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}
