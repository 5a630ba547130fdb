package kafka

import (
	"encoding/hex"

	kafkago "github.com/segmentio/kafka-go"
)

// RouteHeader is the header of a message whose partition is chosen by route rather than by
// key: its value, hex digits (a device route, pseudonym.IMEI.Route), picks partition
// route mod N. The enricher sets it so that a device keeps its partition when a key
// rotation changes its pseudonym, the message key.
const RouteHeader = "route"

// routeBalancer sends a message with a RouteHeader to partition route mod N, and any other
// by the murmur2 hash of its key, as Java clients do.
type routeBalancer struct{ byKey kafkago.Murmur2Balancer }

func (b *routeBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	for _, h := range msg.Headers {
		if h.Key != RouteHeader {
			continue
		}
		var v [8]byte
		if len(h.Value) == 0 || len(h.Value) > 2*len(v) {
			break // not a route: by key
		}
		n, err := hex.Decode(v[:], h.Value)
		if err != nil {
			break
		}
		r := 0
		for _, c := range v[:n] {
			r = r<<8 | int(c)
		}
		return partitions[r%len(partitions)]
	}
	return b.byKey.Balance(msg, partitions...)
}
