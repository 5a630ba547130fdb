package pipeline

import "github.com/vigie/vigie/pkg/event"

// FastDecode exposes the fast path to the differential tests.
func FastDecode(data []byte) (event.Detector, bool) { return fastDecode(data) }
