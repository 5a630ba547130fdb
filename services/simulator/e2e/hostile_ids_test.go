package e2e

// A hostile sender's identifiers in every string field (issue #15, item 8).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/simulator/internal/report"
	"github.com/vigie/vigie/services/simulator/internal/traffic"
)

// hostileIDs are the identifiers of the corpus: an IMEI with its Luhn digit, the same
// without it and with a wrong one, an IMSI, a phone number in E.164 and national form.
var hostileIDs = []string{"358288021042170", "35828802104217", "358288021042179", "208150123456789", "+33612345678", "0612345678"}

// hostileForms writes an identifier as a hostile sender would: each form is the JSON text
// of the field's value.
func hostileForms(id string) map[string]string {
	d := digitsOnly(id)
	var esc strings.Builder
	for _, r := range id {
		fmt.Fprintf(&esc, `\u%04x`, r)
	}
	split := func(sep string) string {
		var b strings.Builder
		for i, r := range d {
			if i > 0 && i%3 == 0 {
				b.WriteString(sep)
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	return map[string]string{
		"plain":       jsonText(id),
		"in_text":     jsonText("seen " + id + " here"),
		"escaped":     `"` + esc.String() + `"`,
		"spaces":      jsonText(split(" ")),
		"dashes":      jsonText(split("-")),
		"dots":        jsonText(split(".")),
		"colons":      jsonText(split(":")),
		"underscores": jsonText(split("_")),
		"number":      d,
		"float":       d + ".0",
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestHostileIdentifiers puts every identifier of the corpus, in every form, into every
// string field of one event of every kind (and into an unknown field), beside the same
// events unchanged: the valid ones are stored, and afterwards no topic, no column of any
// table, no dead letter, no log line and no metric of any service holds one of them, in any
// form (separators skipped, escapes decoded).
func TestHostileIdentifiers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newPipeline(t, testenv.KafkaBrokers(t), "hi")
	p.startServices("ingest", "enricher", "writer", "correlator")
	for _, id := range hostileIDs {
		p.ids.addDigits(digitsOnly(id), "hostile")
	}

	opt := traffic.DefaultOptions()
	opt.Seed, opt.Days, opt.Scale, opt.Scenarios = 41, 7, 0.02, nil
	opt.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -opt.Days)
	opt.RunID = "hi-" + traffic.Letters(rand.Uint64()>>20)
	events, _ := generate(t, opt)
	bases := map[string]event.Detector{}
	for _, e := range events {
		if _, ok := bases[string(e.Kind)]; !ok {
			p.ids.add(&e)
			bases[string(e.Kind)] = e
		}
	}
	require.Len(t, bases, 8, "one event of every kind")

	tr := newTracker(p)
	var lines, fields int
	accepted, answered := 0, map[int]int{}
	kinds := make([]string, 0, len(bases))
	for k := range bases {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for ki, kind := range kinds {
		base := bases[kind]
		var body []string
		data, err := json.Marshal(base)
		require.NoError(t, err)
		body = append(body, string(data)) // the event as sent by its sensor: stored
		paths := stringPaths(t, data)
		paths = append(paths, "/note") // not in the contract
		fields += len(paths)
		n := 0
		for _, path := range paths {
			for _, id := range hostileIDs {
				for _, form := range hostileForms(id) {
					n++
					mutated := base
					if path != "/event_id" {
						mutated.EventID = fmt.Sprintf("%s-h%d-%s", opt.RunID, ki, traffic.Letters(uint64(n)))
					}
					line, err := setJSON(mutated, path, form)
					require.NoError(t, err)
					body = append(body, line)
				}
			}
		}
		lines += len(body)
		for i := 0; i < len(body); i += 500 {
			chunk := body[i:min(i+500, len(body))]
			status, answer, _ := tr.try(ctx, base.SensorID, []byte(strings.Join(chunk, "\n")+"\n"))
			answered[status]++
			var a ingestAnswer
			_ = json.Unmarshal(answer, &a)
			accepted += a.Accepted
			require.NotEqual(t, 0, status, "ingest answered")
			require.Less(t, status, 500, "%s", answer)
		}
	}
	t.Logf("%d lines (%d string fields of %d kinds × %d identifiers × %d forms), %d accepted, answers %v",
		lines, fields, len(kinds), len(hostileIDs), len(hostileForms(hostileIDs[0])), accepted, answered)
	require.GreaterOrEqual(t, accepted, len(kinds), "the unchanged events are stored")

	rp := p.open(ctx)
	require.Eventually(t, func() bool {
		var n uint64
		_ = rp.Conn.QueryRow(ctx, "SELECT count() FROM `"+p.db+"`.detections").Scan(&n)
		return int(n) == accepted
	}, 3*time.Minute, time.Second, "rows = accepted")

	// Metrics before the services stop (checkLeaks stops them to read complete logs).
	for s, admin := range p.admins {
		resp, err := http.Get("http://" + admin + "/metrics")
		require.NoError(t, err, s)
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		if leak := p.ids.find(string(data)); leak != "" {
			t.Errorf("metrics of %s hold a clear %s", s, leak)
		}
	}
	p.checkLeaks(ctx, rp)
	checkDeadLetters(ctx, t, p, rp)
}

// checkDeadLetters: every dead letter of the run is of the contract's allow-list, and none
// of them holds an escaped identifier either (checkLeaks saw the raw text).
func checkDeadLetters(ctx context.Context, t *testing.T, p *pipeline, rp *report.Pipeline) {
	t.Helper()
	n := 0
	require.NoError(t, report.ReadTopicWith(ctx, p.kafka, p.dlq, func(m kafkago.Message) {
		n++
		var r event.DLQ
		require.NoError(t, event.DecodeDLQ(m.Value, &r))
		require.NotContains(t, string(m.Value), `"payload`, "no copy of the message")
	}))
	require.Positive(t, n, "the refused events are dead-lettered")
	t.Logf("%d dead letters checked", n)
}

// stringPaths lists the JSON pointers of every string value of a marshalled event.
func stringPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(data, &doc))
	var out []string
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				walk(val, ptr+"/"+k)
			}
		case []any:
			for i, val := range x {
				walk(val, fmt.Sprintf("%s/%d", ptr, i))
			}
		case string:
			out = append(out, ptr)
		}
	}
	walk(doc, "")
	sort.Strings(out)
	return out
}

// setJSON returns e's JSON with the value at path (an object member, created if missing)
// replaced by the JSON text value.
func setJSON(e event.Detector, path, value string) (string, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", err
	}
	toks := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := doc
	for _, tok := range toks[:len(toks)-1] {
		switch x := cur.(type) {
		case map[string]any:
			cur = x[tok]
		case []any:
			var i int
			fmt.Sscan(tok, &i)
			cur = x[i]
		}
	}
	const marker = "\x00HOSTILE\x00"
	last := toks[len(toks)-1]
	switch x := cur.(type) {
	case map[string]any:
		x[last] = marker
	case []any:
		var i int
		fmt.Sscan(last, &i)
		x[i] = marker
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return strings.Replace(string(out), jsonText(marker), value, 1), nil
}

// addDigits registers an identifier given as its digits.
func (c *clearIDs) addDigits(d, kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[d] = kind
}
