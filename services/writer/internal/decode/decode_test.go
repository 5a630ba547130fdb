package decode_test

import (
	"encoding/json"
	"os"
	"path/filepath"
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

func TestDecodeContractExamples(t *testing.T) {
	files, _ := filepath.Glob("../../../../schemas/events/examples/*.json")
	require.NotEmpty(t, files)
	d := decode.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		want, err := std(t, data)
		require.NoError(t, err, f)
		var got event.Enriched
		require.NoError(t, d.Decode(data, &got), f)
		require.Equal(t, want, got, f)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not json", `{"event_id": `},
		{"not an object", `[1, 2]`},
		{"string expected", `{"event_id": 12}`},
		{"bad time", `{"observed_at": "yesterday"}`},
		{"bad month", `{"observed_at": "2026-13-25T09:14:07.125Z"}`},
		{"fraction in integer", `{"duration_ms": 1.5}`},
		{"number as string", `{"duration_ms": "15"}`},
		{"drone not an object", `{"drone": "high"}`},
		{"bool expected", `{"mini_phone": "yes"}`},
	}
	d := decode.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e event.Enriched
			require.Error(t, d.Decode([]byte(tt.in), &e))
			_, err := std(t, []byte(tt.in))
			require.Error(t, err, "encoding/json rejects it too")
		})
	}
}

func TestParseTimeOtherLayouts(t *testing.T) {
	d := decode.New()
	var e event.Enriched
	require.NoError(t, d.Decode([]byte(`{"observed_at": "2026-11-25T10:14:07.1+01:00"}`), &e))
	require.Equal(t, time.Date(2026, 11, 25, 9, 14, 7, 100_000_000, time.UTC), e.ObservedAt.Time)
}

// FuzzDecode holds the decoder to encoding/json: it never panics, and whatever
// encoding/json reads, once re-encoded (as a producer of the contract writes it), it reads
// identically.
func FuzzDecode(f *testing.F) {
	gen := sample.New(4, 100, time.Now())
	for range 20 {
		_, data := gen.JSON()
		f.Add(data)
	}
	f.Add([]byte(`{"jammer": {"bands": [null, "B20"]}, "seizure": {"phones": 3}}`))
	f.Add([]byte(`{"observed_at": "2026-02-29T00:00:00.000Z"}`))
	d := decode.New()
	f.Fuzz(func(t *testing.T, data []byte) {
		var got event.Enriched
		_ = d.Decode(data, &got)
		want, err := std(t, data)
		if err != nil {
			return
		}
		canonical, err := json.Marshal(want)
		require.NoError(t, err)
		want, err = std(t, canonical)
		require.NoError(t, err)
		require.NoError(t, d.Decode(canonical, &got), string(canonical))
		require.Equal(t, want, got, string(canonical))
	})
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
