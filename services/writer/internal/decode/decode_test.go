package decode_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/writer/internal/decode"
	"github.com/vigie/vigie/services/writer/internal/sample"
)

// std decodes with encoding/json, the reference.
func std(t testing.TB, data []byte) (event.Enriched, error) {
	var e event.Enriched
	err := json.Unmarshal(data, &e)
	return e, err
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	d := decode.New()
	gen := sample.New(3, 1000, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
	for range 5000 {
		_, data := gen.JSON()
		want, err := std(t, data)
		require.NoError(t, err)
		var got event.Enriched
		require.NoError(t, d.Decode(data, &got))
		require.Equal(t, want, got, string(data))
	}
}

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
		d := decode.New()
		var e event.Enriched
		for i := range b.N {
			if err := d.Decode(msgs[i%len(msgs)], &e); err != nil {
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
