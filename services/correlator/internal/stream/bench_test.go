package stream_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/services/correlator/internal/alert"
	"github.com/vigie/vigie/services/correlator/internal/rules"
	"github.com/vigie/vigie/services/correlator/internal/scenario"
	"github.com/vigie/vigie/services/correlator/internal/stream"
)

// workload is a day of ordinary traffic: devices spread over every facility, each with a
// few attempts, in event-time order, as JSON messages of detections.enriched.v1.
func workload(b *testing.B, devices, perDevice int) [][]byte {
	b.Helper()
	ref, err := scenario.DefaultReference()
	require.NoError(b, err)
	g := scenario.New(ref, 1, "bench")
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	kinds := []event.Kind{event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt, event.KindDataAttempt}
	es := make([]event.Enriched, 0, devices*perDevice)
	for i := 0; i < devices; i++ {
		d := g.NewDevice(scenario.CommonTACs[i%len(scenario.CommonTACs)])
		f := g.Facility(i)
		for k := 0; k < perDevice; k++ {
			t := start.Add(time.Duration((i*7919+k*104729)%86400) * time.Second)
			es = append(es, g.Radio(kinds[(i+k)%len(kinds)], d, f, t))
		}
	}
	scenario.SortByTime(es)
	out := make([][]byte, len(es))
	for i := range es {
		out[i], err = json.Marshal(&es[i])
		require.NoError(b, err)
	}
	return out
}

// BenchmarkStreaming measures the streaming rules (all on) per event, JSON decoding
// included: go test -run=^$ -bench=BenchmarkStreaming -cpu=1 ./internal/stream/
// Each pass over the day of traffic is the next day, with new event ids: every event is a
// first delivery (the engine ignores second ones), as on the enriched topic.
func BenchmarkStreaming(b *testing.B) {
	rs, err := rules.LoadDefault()
	require.NoError(b, err)
	msgs := workload(b, 50_000, 8)
	var ids [][]string // per pass after the first: the event ids
	for _, decode := range []bool{true, false} {
		name := "decode+evaluate"
		var pre []event.Enriched
		if !decode {
			name = "evaluate"
			pre = make([]event.Enriched, len(msgs))
			for i, m := range msgs {
				require.NoError(b, event.DecodeEnriched(m, &pre[i]))
			}
		}
		b.Run(name, func(b *testing.B) {
			eng := stream.NewEngine(rs, nil)
			var out []alert.Alert
			var e event.Enriched
			dec := event.NewDecoder()
			b.ReportAllocs()
			runtime.GC()
			var setup time.Duration // CPU spent making ids, not counted
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pass, k := i/len(msgs), i%len(msgs)
				if pass > 0 && k == 0 && len(ids) < pass {
					b.StopTimer()
					c := cpuTime()
					next := make([]string, len(msgs))
					for j := range next {
						var x event.Enriched
						require.NoError(b, event.DecodeEnriched(msgs[j], &x))
						next[j] = fmt.Sprintf("%s/%d", x.EventID, pass)
					}
					ids = append(ids, next)
					setup += cpuTime() - c
					b.StartTimer()
				}
				ev := &e
				if decode {
					if err := dec.Enriched(msgs[k], &e); err != nil {
						b.Fatal(err)
					}
				} else {
					e = pre[k]
				}
				if pass > 0 {
					shift := time.Duration(pass) * 24 * time.Hour
					ev.EventID = ids[pass-1][k]
					ev.ObservedAt.Time = ev.ObservedAt.Add(shift)
					ev.ReceivedAt.Time = ev.ReceivedAt.Add(shift)
				}
				out = eng.Observe(ev, true, out[:0])
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// CPU time of the process, not wall time: on a shared machine, what one core does.
			b.ReportMetric(float64(b.N)/(cpuTime()-cpu0-setup).Seconds(), "events/cpu-s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStateMemory measures the streaming state held per tracked device after a day of
// traffic by n devices (3 attempts each, two SIM changes in ten devices):
// go test -run=^$ -bench=BenchmarkStateMemory -benchtime=1x ./internal/stream/
func BenchmarkStateMemory(b *testing.B) {
	rs, err := rules.LoadDefault()
	require.NoError(b, err)
	ref, err := scenario.DefaultReference()
	require.NoError(b, err)
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			for range b.N {
				g := scenario.New(ref, 2, "mem")
				start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				eng := stream.NewEngine(rs, ref)
				kinds := []event.Kind{event.KindMASAttach, event.KindCallAttempt, event.KindSMSAttempt}
				var out []alert.Alert
				for i := 0; i < n; i++ {
					d := g.NewDevice(scenario.CommonTACs[i%4])
					f := g.Facility(i)
					for k := 0; k < 3; k++ {
						if i%10 == 0 && k > 0 {
							d.IMSI = fmt.Sprintf("%032x", i*3+k)
						}
						e := g.Radio(kinds[k], d, f, start.Add(time.Duration(i%86400)*time.Second+time.Duration(k)*time.Minute))
						out = eng.Observe(&e, true, out[:0])
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
				b.ReportMetric(held/float64(eng.Devices()), "bytes/device")
				b.ReportMetric(held/(1<<20), "MiB")
				b.ReportMetric(float64(eng.Devices()), "devices")
				runtime.KeepAlive(eng)
			}
		})
	}
}

// BenchmarkStateBudget measures the state held when the caps bind: 100,000 devices each
// seen with 60 SIMs (6 million events, interleaved: the worst order for a budget that
// forgets the least recently seen devices), against the default caps (256 values per field:
// not reached; 5 million entries per partition: reached at about 48 SIMs per device), and
// with a budget that holds everything (6.4 million entries). Identities are kept to one
// (dedup.max_identities bounds them on their own, about 40 B each), so the heap measured is
// the rules' state:
// go test -run=^$ -bench=BenchmarkStateBudget -benchtime=1x -timeout=60m ./internal/stream/
func BenchmarkStateBudget(b *testing.B) {
	rs, err := rules.LoadDefault()
	require.NoError(b, err)
	for _, budget := range []int{stream.DefaultStateConfig().MaxEntries, 10_000_000} {
		b.Run(fmt.Sprintf("max_entries=%d", budget), func(b *testing.B) {
			for range b.N {
				cfg := stream.DefaultEngineConfig()
				cfg.MaxIdentities = 1
				cfg.State.MaxEntries = budget
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				eng := stream.NewEngineConfig(rs, nil, cfg)
				most := 0
				distinctIMSIs(b, eng, 100_000, 60, func([]alert.Alert) { most = max(most, eng.Entries()) })
				runtime.GC()
				runtime.ReadMemStats(&after)
				held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
				var forgotten uint64
				for _, o := range eng.Stats().Overflow {
					forgotten += o.Budget
				}
				b.ReportMetric(float64(most), "max-entries")
				b.ReportMetric(float64(eng.Entries()), "entries")
				b.ReportMetric(held/(1<<20), "MiB")
				b.ReportMetric(held/float64(eng.Entries()), "bytes/entry")
				b.ReportMetric(float64(eng.Stats().Sheds), "sheds")
				b.ReportMetric(float64(forgotten), "forgotten")
				runtime.KeepAlive(eng)
			}
		})
	}
}

// BenchmarkCappedDevice measures the events of one device at its cap: a handset seen with a
// new SIM every second, past the 256 SIM_CHURN keeps (its finding open, each event a
// sighting not tracked, the finding folded at each event):
// go test -run=^$ -bench=BenchmarkCappedDevice -cpu=1 ./internal/stream/
func BenchmarkCappedDevice(b *testing.B) {
	rs, err := rules.LoadDefault()
	require.NoError(b, err)
	ref, err := scenario.DefaultReference()
	require.NoError(b, err)
	g := scenario.New(ref, 16, "capped")
	const warm = 1000
	p := g.ManySIMs(g.Facility(3), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), warm+b.N, time.Second)
	eng := stream.NewEngine(rs, ref)
	var out []alert.Alert
	for i := range p.Events[:warm] {
		out = eng.Observe(&p.Events[i], true, out[:0])
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out = eng.Observe(&p.Events[warm+i], true, out[:0])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
}
