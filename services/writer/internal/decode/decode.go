// Package decode is the writer's name for pkg/event's enriched-event decoder, the one fast
// parser of detections.enriched.v1 (it moved there so that the correlator uses it too). It
// is kept so that the writer's consumer reads as before; new code uses event.NewDecoder.
package decode

import "github.com/vigie/vigie/pkg/event"

// Decoder decodes enriched events; it is not safe for concurrent use (one per partition).
type Decoder struct{ d *event.Decoder }

// New returns a decoder.
func New() *Decoder { return &Decoder{d: event.NewDecoder()} }

// Decode fills e, which it first resets, from data: event.Decoder.Enriched.
func (d *Decoder) Decode(data []byte, e *event.Enriched) error { return d.d.Enriched(data, e) }
