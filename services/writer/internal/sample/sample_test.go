package sample_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/writer/internal/sample"
)

// TestDecodeMatchesEncodingJSON holds pkg/event's decoder, the writer's, to encoding/json on
// the writer's generated traffic (the contract's examples and the fuzz target are in pkg/event).
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	d := event.NewDecoder()
	gen := sample.New(3, 1000, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	for range 5000 {
		_, data := gen.JSON()
		var want, got event.Enriched
		require.NoError(t, json.Unmarshal(data, &want))
		require.NoError(t, d.Enriched(data, &got))
		require.Equal(t, want, got, string(data))
	}
}

// BenchmarkDecode measures decoding the writer's traffic with pkg/event's decoder, against
// encoding/json: go test -run XXX -bench BenchmarkDecode -benchmem ./internal/sample
func BenchmarkDecode(b *testing.B) {
	gen := sample.New(1, 10000, time.Now())
	msgs := make([][]byte, 4096)
	size := 0
	for i := range msgs {
		_, msgs[i] = gen.JSON()
		size += len(msgs[i])
	}
	b.SetBytes(int64(size / len(msgs)))
	b.Run("fastjson", func(b *testing.B) {
		d := event.NewDecoder()
		var e event.Enriched
		for i := range b.N {
			if err := d.Enriched(msgs[i%len(msgs)], &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		var e event.Enriched
		for i := range b.N {
			e = event.Enriched{}
			if err := json.Unmarshal(msgs[i%len(msgs)], &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
