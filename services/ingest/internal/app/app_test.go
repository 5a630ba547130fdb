package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
	"github.com/vigie/vigie/pkg/service"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/schemas/events"
	schemaref "github.com/vigie/vigie/schemas/reference"
	"github.com/vigie/vigie/services/ingest/internal/app"
	"github.com/vigie/vigie/services/ingest/internal/follow"
	"github.com/vigie/vigie/services/ingest/internal/pipeline"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// Two managed access systems of the reference data that ingest checks zones against.
const (
	sensorA = "cd-ecrouves.mas-001"
	sensorB = "cd-ecrouves.mas-002"
)

// referenceZone is the zone of sensor in the embedded reference data, and whether the
// reference knows the sensor.
func referenceZone(t *testing.T, sensor string) (string, bool) {
	t.Helper()
	snap, err := embeddedReference()
	require.NoError(t, err)
	s, ok := snap.Sensor(sensor)
	if !ok {
		return "", false
	}
	return s.Zone, true
}

var embeddedReference = sync.OnceValues(func() (*reference.Snapshot, error) { return reference.Load(schemaref.FS) })

// env is one running ingest with its own topics, credentials and log buffer.
type env struct {
	t        *testing.T
	svc      *service.Service
	cfg      *app.Config
	tokens   map[string]string
	logs     *syncBuffer
	url      string
	addr     string
	brokers  []string
	cancel   context.CancelFunc
	done     chan error
	credFile string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Sync() error { return nil }
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs ingest in-process through the service skeleton, as main does, with topics of
// its own (created here as `vigiectl topics apply` would, unless adjust points Kafka
// elsewhere), and waits until it serves.
func start(t *testing.T, adjust func(*app.Config), opts ...app.Option) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, tokens: map[string]string{}, logs: &syncBuffer{}, brokers: testenv.KafkaBrokers(t)}
	f := &sensorauth.File{}
	for _, s := range []string{sensorA, sensorB} {
		entry, tok, err := sensorauth.NewEntry(s, reference.SensorMAS)
		require.NoError(t, err)
		f.Credentials = append(f.Credentials, entry)
		e.tokens[s] = tok
	}
	e.credFile = filepath.Join(dir, "credentials.yaml")
	require.NoError(t, f.WriteFile(e.credFile))
	keyFile := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(keyFile, []byte("active: t1\ndefault_country_code: \"33\"\nblock_key: "+hex.EncodeToString([]byte("integration-test-block-key-01234"))+"\nkeys:\n  t1: "+hex.EncodeToString([]byte("integration-test-key-0123456789ab"))+"\n"), 0o600))

	// The events API's listener, made here so that the address is known before the start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg := app.DefaultConfig()
	cfg.Admin.Listen, cfg.Listen = "127.0.0.1:0", ln.Addr().String()
	cfg.CredentialsFile = e.credFile
	cfg.Pseudonym.KeyFile = keyFile
	cfg.Kafka.Brokers = e.brokers
	cfg.Topics.Raw = testenv.Name(t, "raw")
	cfg.Topics.DLQ = testenv.Name(t, "dlq")
	cfg.ProduceTimeout = 5 * time.Second
	cfg.RetryAfter = 2 * time.Second
	cfg.ShutdownTimeout = 10 * time.Second
	if adjust != nil {
		adjust(cfg)
	}
	require.NoError(t, cfg.Validate(), "what main's config.Load checks")
	e.cfg = cfg
	if slices.Equal(cfg.Kafka.Brokers, e.brokers) {
		createTopics(t, cfg.Kafka, cfg.Topics.Raw, cfg.Topics.DLQ)
	}

	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), e.logs, zapcore.DebugLevel))
	started := make(chan *service.Service, 1)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() {
		e.done <- service.Run(ctx, "ingest", cfg, app.Builder(append(opts, app.WithListener(ln))...),
			service.WithLogger(logger), service.WithRegistry(prometheus.NewRegistry()),
			service.WithStarted(func(s *service.Service) { started <- s }))
	}()
	select {
	case e.svc = <-started:
	case err := <-e.done:
		cancel()
		t.Fatalf("ingest did not start: %v", err)
	}
	t.Cleanup(e.stop)
	e.addr = ln.Addr().String()
	scheme := "http://"
	if cfg.TLS.CertFile != "" {
		scheme = "https://"
	}
	e.url = scheme + e.addr + server.Path
	// Serving once an unauthenticated request is answered 401.
	require.Eventually(t, func() bool {
		if cfg.TLS.ClientCAFile != "" {
			return true // needs a client certificate; the mutual TLS test checks serving itself
		}
		resp, err := e.client().Post(e.url, "application/x-ndjson", nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	}, 10*time.Second, 5*time.Millisecond)
	if slices.Equal(cfg.Kafka.Brokers, e.brokers) {
		// Requests are answered 503 until the dedup window is rebuilt from the raw topic.
		require.Eventually(t, func() bool { return e.svc.Ready(context.Background()) == nil }, 60*time.Second, 10*time.Millisecond,
			"ready: the dedup window rebuilt")
	}
	return e
}

// createTopics creates the test's topics with 3 partitions, as `vigiectl topics apply`
// creates Vigie's.
func createTopics(t *testing.T, conn kafka.Config, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var specs []kafka.TopicSpec
	for _, n := range names {
		specs = append(specs, kafka.TopicSpec{Name: n, Partitions: 3})
	}
	_, err := kafka.ApplyTopics(ctx, conn, specs, zap.NewNop())
	require.NoError(t, err)
}

func (e *env) adminURL(path string) string { return "http://" + e.svc.AdminAddr() + path }

func (e *env) client() *http.Client {
	if e.cfg.TLS.CertFile == "" {
		return http.DefaultClient
	}
	// Only to see that the server answers; the TLS test makes its own verified clients.
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	require.NoError(e.t, <-e.done)
	e.cancel = nil
}

type reply struct {
	code       int
	retryAfter string
	body       server.Response
	raw        string
}

func (e *env) post(sensor string, body []byte, header map[string]string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-ndjson")
	if sensor != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[sensor])
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	r := reply{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), raw: string(b)}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusConflict, http.StatusUnprocessableEntity: // a batch result
		require.NoError(e.t, json.Unmarshal(b, &r.body))
	}
	return r
}

// makeEvents returns n valid events of sensor with ids prefix-i, cycling through the kinds
// of the contract's examples, and the clear identifiers they carry.
func makeEvents(t *testing.T, sensor, prefix string, n int) ([][]byte, []string) {
	ex, err := events.Examples("examples")
	require.NoError(t, err)
	var docs []map[string]any
	// The test sensors are managed access systems: they may post these kinds only.
	for _, name := range []string{"mas_attach.json", "call_attempt.json", "sms_attempt.json", "data_attempt.json"} {
		var m map[string]any
		require.NoError(t, json.Unmarshal(ex[name], &m))
		docs = append(docs, m)
	}
	var out [][]byte
	var ids []string
	for i := range n {
		m := map[string]any{}
		for k, v := range docs[i%len(docs)] {
			m[k] = v
		}
		m["sensor_id"] = sensor
		m["event_id"] = fmt.Sprintf("%s-%d", prefix, i)
		// A zone must be one of the sensor's facility; a sensor the reference does not know
		// (made up by a test) sends none.
		if zone, ok := referenceZone(t, sensor); ok {
			m["zone"] = zone
		} else {
			delete(m, "zone")
		}
		// Observed just before the tests started, within ingest's time bounds whenever they
		// run; the same for the same i, so that events made again have the same content.
		m["observed_at"] = event.NewTime(eventsObservedAt.Add(-time.Duration(i) * time.Millisecond)).String()
		if _, ok := m["imei"]; ok {
			m["imei"] = fmt.Sprintf("35828802%06d%d", i, i%10)
		}
		if _, ok := m["imsi"]; ok {
			m["imsi"] = fmt.Sprintf("2081501%08d", i)
		}
		if _, ok := m["msisdn_dialed"]; ok {
			m["msisdn_dialed"] = fmt.Sprintf("+33 6 %02d %02d %02d %02d", i%100, (i/100)%100, 17, 42)
		}
		b, err := json.Marshal(m)
		require.NoError(t, err)
		out = append(out, b)
		ids = append(ids, m["event_id"].(string))
	}
	return out, ids
}

// eventsObservedAt dates the events of makeEvents.
var eventsObservedAt = time.Now().Add(-time.Minute)

func ndjson(lines [][]byte) []byte { return append(bytes.Join(lines, []byte("\n")), '\n') }

// readAll reads every message of topic.
func readAll(t *testing.T, brokers []string, topic string) []kafkago.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Right after a topic is created the broker may still answer "not leader" for a moment.
	var ends map[int]int64
	require.Eventually(t, func() bool {
		var err error
		ends, err = kafka.PartitionOffsets(ctx, kafka.Config{Brokers: brokers}, topic)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "list offsets of %s", topic)
	var out []kafkago.Message
	for p, end := range ends {
		if end == 0 {
			continue
		}
		conn, err := kafkago.DialLeader(ctx, "tcp", brokers[0], topic, p)
		require.NoError(t, err)
		next := int64(0)
		for next < end {
			_, err := conn.Seek(next, kafkago.SeekAbsolute)
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			batch := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				out = append(out, m)
				next = m.Offset + 1
			}
			require.NoError(t, batch.Close())
		}
		require.NoError(t, conn.Close())
	}
	return out
}

func eventIDs(t *testing.T, msgs []kafkago.Message) map[string]int {
	ids := map[string]int{}
	for _, m := range msgs {
		sensorID, eventID, ok := follow.Identity(m.Value)
		require.True(t, ok, "a raw record: %s", m.Value)
		require.Equal(t, string(sensorID), string(m.Key), "raw is keyed by sensor_id")
		ids[string(eventID)]++
	}
	return ids
}

func TestAcceptedExactlyOnceAndNoClearIdentifiers(t *testing.T) {
	e := start(t, nil)
	good, ids := makeEvents(t, sensorA, "exact", 60)
	bad := [][]byte{
		[]byte(`{"event_id":"bad-1","sensor_id":"` + sensorA + `","observed_at":"2026-11-25T09:14:07.125Z","kind":"mas_attach","rat":"LTE","imei":"358288029999990","imsi":"208159999999999"}`),
		[]byte(`{"event_id":"bad-2","sensor_id":"` + sensorB + `","observed_at":"2026-11-25T09:14:07.125Z","kind":"call_attempt","rat":"4G","msisdn_dialed":"06 99 88 77 66"}`),
		[]byte(`{"event_id":"bad-3","imei":"358288028888880",`),
		// A zone that is not one of the sensor's facility in the reference: not free text.
		[]byte(`{"event_id":"bad-4","sensor_id":"` + sensorA + `","observed_at":"2026-11-25T09:14:07.125Z","kind":"mas_attach","rat":"4G","zone":"cellule-12"}`),
	}
	body := ndjson(append(append(append([][]byte{}, good[:30]...), bad...), good[30:]...))

	r := e.post(sensorA, body, nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 60, r.body.Accepted)
	require.Equal(t, 4, r.body.Rejected)
	require.Equal(t, []int{30, 31, 32, 33}, []int{r.body.Errors[0].Position, r.body.Errors[1].Position, r.body.Errors[2].Position, r.body.Errors[3].Position})
	require.Equal(t, "/rat", r.body.Errors[0].Errors[0].Pointer)
	require.Equal(t, event.ReasonSensorMismatch, r.body.Errors[1].Code)
	require.Equal(t, event.ReasonMalformedJSON, r.body.Errors[2].Code)
	require.Equal(t, event.ReasonInvalidText, r.body.Errors[3].Code)
	require.Equal(t, []string{"/zone", pipeline.ReasonUnknownZone}, []string{r.body.Errors[3].Errors[0].Pointer, r.body.Errors[3].Errors[0].Reason})
	require.Equal(t, "bad-1", r.body.Errors[0].EventID)
	requireMatchesOpenAPI(t, openAPISchema(t, "BatchResult"), r.raw)

	// The same request again (a sensor retrying after a lost answer): nothing new produced.
	r = e.post(sensorA, body, nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 0, r.body.Accepted)
	require.Equal(t, 60, r.body.Duplicates)

	// The same events as a gzip-compressed JSON array: still duplicates.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("[" + string(bytes.Join(good[:10], []byte(","))) + "]"))
	require.NoError(t, zw.Close())
	r = e.post(sensorA, gz.Bytes(), map[string]string{"Content-Encoding": "gzip", "Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, 10, r.body.Duplicates)

	raw := readAll(t, e.brokers, e.cfg.Topics.Raw)
	got := eventIDs(t, raw)
	require.Len(t, got, len(ids))
	for _, id := range ids {
		require.Equal(t, 1, got[id], "event %s arrives exactly once", id)
	}
	dlq := readAll(t, e.brokers, e.cfg.Topics.DLQ)
	require.Len(t, dlq, 8, "4 rejected events, sent twice")
	for _, m := range dlq {
		var rec event.DLQ
		require.NoError(t, json.Unmarshal(m.Value, &rec))
		require.Equal(t, "ingest", rec.Service)
		require.Equal(t, sensorA, string(m.Key))
	}

	// No clear identifier anywhere: raw topic, DLQ topic, logs.
	e.stop()
	var clear []string
	for _, b := range append(append([][]byte{}, good...), bad...) {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			clear = append(clear, "358288028888880")
			continue
		}
		for _, k := range []string{"imei", "imsi", "msisdn_dialed"} {
			if v, ok := m[k].(string); ok {
				clear = append(clear, v, strings.NewReplacer(" ", "", "+33", "0").Replace(v))
				if k == "imei" {
					clear = append(clear, v[:14])
				}
				if k == "msisdn_dialed" {
					clear = append(clear, "+33"+strings.ReplaceAll(v, " ", "")[1:], strings.ReplaceAll(v, " ", "")[3:])
				}
			}
		}
	}
	var all strings.Builder
	for _, m := range append(raw, dlq...) {
		all.Write(m.Key)
		all.Write(m.Value)
		all.WriteByte('\n')
	}
	all.WriteString(e.logs.String())
	require.NotEmpty(t, e.logs.String())
	haystack := all.String()
	for _, c := range clear {
		require.NotContains(t, haystack, c, "clear identifier leaked")
	}
}

func TestRequestErrors(t *testing.T) {
	e := start(t, func(c *app.Config) {
		c.Limits.MaxEvents = 20
		c.Rate.Burst = 20
		c.Rate.EventsPerSecond = 1
	})
	good, _ := makeEvents(t, sensorB, "req", 25)
	errSchema := openAPISchema(t, "Error")
	for _, tc := range []struct {
		name   string
		sensor string
		body   []byte
		header map[string]string
		code   int
	}{
		{"no token", "", ndjson(good[:1]), nil, http.StatusUnauthorized},
		{"wrong token", "", ndjson(good[:1]), map[string]string{"Authorization": "Bearer vgs_nope"}, http.StatusUnauthorized},
		{"media type", sensorB, ndjson(good[:1]), map[string]string{"Content-Type": "text/csv"}, http.StatusUnsupportedMediaType},
		{"encoding", sensorB, ndjson(good[:1]), map[string]string{"Content-Encoding": "br"}, http.StatusUnsupportedMediaType},
		{"bad gzip", sensorB, []byte("not gzip"), map[string]string{"Content-Encoding": "gzip"}, http.StatusBadRequest},
		{"broken array", sensorB, []byte(`[{"a":1},`), nil, http.StatusBadRequest},
		{"empty", sensorB, []byte("\n\n"), nil, http.StatusBadRequest},
		{"too many events", sensorB, ndjson(good[:21]), nil, http.StatusRequestEntityTooLarge},
		{"accepted", sensorB, ndjson(good[:20]), nil, http.StatusOK},
		{"rate limited", sensorB, ndjson(good[20:25]), nil, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(tc.sensor, tc.body, tc.header)
			require.Equal(t, tc.code, r.code, r.raw)
			if tc.code != http.StatusOK {
				requireMatchesOpenAPI(t, errSchema, r.raw)
			}
			if tc.code == http.StatusTooManyRequests {
				require.NotEmpty(t, r.retryAfter)
			}
		})
	}
}

// TestCredentialsReloadOnSIGHUP rotates the credentials file and sends SIGHUP: the new
// sensor is let in without a restart; then a broken file on SIGHUP fails closed (503 for
// every sensor, not ready) until the file is fixed and reloaded.
func TestCredentialsReloadOnSIGHUP(t *testing.T) {
	e := start(t, nil)
	const newSensor = "cd-salon-de-provence-mas-07"
	entry, tok, err := sensorauth.NewEntry(newSensor, reference.SensorMAS)
	require.NoError(t, err)
	f, err := sensorauth.Load(e.credFile)
	require.NoError(t, err)
	const jammer = "cp-aix-luynes-jam-01"
	jam, jamTok, err := sensorauth.NewEntry(jammer, reference.SensorJammer)
	require.NoError(t, err)
	f.Credentials = append(f.Credentials, entry, jam)
	require.NoError(t, f.WriteFile(e.credFile))
	e.tokens[newSensor], e.tokens[jammer] = tok, jamTok
	good, _ := makeEvents(t, newSensor, "reload", 5)
	require.Equal(t, http.StatusUnauthorized, e.post(newSensor, ndjson(good), nil).code, "not before the reload")

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return e.post(newSensor, ndjson(good), nil).code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, metrics(t, e), `vigie_ingest_reloads_total{hook="credentials",result="ok"} 1`)

	// The jammer's token may not post what a managed access system sees.
	attaches, _ := makeEvents(t, jammer, "jammer", 2)
	r := e.post(jammer, ndjson(attaches), nil)
	require.Equal(t, http.StatusForbidden, r.code, r.raw)
	require.Contains(t, r.raw, `"code":"kind_not_allowed_for_sensor"`)
	requireMatchesOpenAPI(t, openAPISchema(t, "Error"), r.raw)
	require.Contains(t, metrics(t, e), `vigie_ingest_auth_refused_total{reason="kind_not_allowed_for_sensor"} 1`)

	// A file broken by a bad edit: the reload fails closed. No sensor gets in (503, retry
	// later: nothing is lost), ingest is not ready, and the log says which file and why.
	require.NoError(t, os.WriteFile(e.credFile, []byte("credentials: [{sensor_id: x"), 0o600))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, e), `vigie_ingest_reloads_total{hook="credentials",result="error"} 1`)
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, e.logs.String(), "reload failed")
	require.Contains(t, e.logs.String(), e.credFile)
	evs, _ := makeEvents(t, sensorA, "during-bad-reload", 3)
	r = e.post(sensorA, ndjson(evs), nil)
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	require.Contains(t, metrics(t, e), "vigie_ingest_credentials_entries 0")
	ready, err := http.Get(e.adminURL("/readyz"))
	require.NoError(t, err)
	_ = ready.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, ready.StatusCode)

	// Fixed and reloaded: every sensor gets in again.
	require.NoError(t, f.WriteFile(e.credFile))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, e), `vigie_ingest_reloads_total{hook="credentials",result="ok"} 2`)
	}, 10*time.Second, 20*time.Millisecond)
	for i, sensor := range []string{sensorA, newSensor} {
		evs, _ := makeEvents(t, sensor, fmt.Sprintf("after-bad-reload-%d", i), 3)
		r := e.post(sensor, ndjson(evs), nil)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		require.Equal(t, 3, r.body.Accepted)
	}
	require.Contains(t, metrics(t, e), "vigie_ingest_credentials_entries 4")
}

// TestCredentialsFailClosedAtStart: without a readable credentials file ingest does not
// start, and says which file.
func TestCredentialsFailClosedAtStart(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(keyFile, []byte("active: t1\nblock_key: "+strings.Repeat("cd", 32)+"\nkeys:\n  t1: "+strings.Repeat("ab", 32)+"\n"), 0o600))
	for name, body := range map[string]string{"broken": "credentials: [oops", "empty": "credentials: []\n", "missing": ""} {
		t.Run(name, func(t *testing.T) {
			cfg := app.DefaultConfig()
			cfg.Admin.Listen, cfg.Listen = "127.0.0.1:0", "127.0.0.1:0"
			cfg.Pseudonym.KeyFile = keyFile
			cfg.CredentialsFile = filepath.Join(dir, name+".yaml")
			if name != "missing" {
				require.NoError(t, os.WriteFile(cfg.CredentialsFile, []byte(body), 0o600))
			}
			err := service.Run(context.Background(), "ingest", cfg, app.Build, service.WithLogger(zap.NewNop()), service.WithRegistry(prometheus.NewRegistry()))
			require.ErrorContains(t, err, cfg.CredentialsFile)
		})
	}
}

func TestKafkaUnreachable(t *testing.T) {
	// A port nothing listens on: Kafka is down from the start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	e := start(t, func(c *app.Config) {
		c.Kafka.Brokers = []string{dead}
		c.ProduceTimeout = 3 * time.Second
	})
	resp, err := http.Get(e.adminURL("/readyz"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	good, _ := makeEvents(t, sensorA, "down", 5)
	r := e.post(sensorA, ndjson(good), nil)
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.raw)
	require.Equal(t, "2", r.retryAfter)
}

// cutter is a Kafka transport whose connections a test can cut, as if the broker stopped,
// without touching the shared broker.
type cutter struct {
	mu    sync.Mutex
	cut   atomic.Bool
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.cut.Load() {
		return nil, fmt.Errorf("dial %s: connection refused (cut by test)", addr)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *cutter) set(down bool) {
	c.cut.Store(down)
	if down {
		c.mu.Lock()
		for _, conn := range c.conns {
			_ = conn.Close()
		}
		c.conns = nil
		c.mu.Unlock()
	}
}

func TestKafkaStoppedNothingAcknowledgedLost(t *testing.T) {
	c := &cutter{}
	tr := &kafkago.Transport{Dial: c.dial}
	t.Cleanup(tr.CloseIdleConnections) // the test's own transport: the producers do not own it
	e := start(t, func(cfg *app.Config) { cfg.ProduceTimeout = 3 * time.Second }, app.WithTransport(tr))
	acked := map[string]bool{}
	var failed [][]byte
	for i := range 12 {
		if i == 4 {
			c.set(true)
		}
		if i == 8 {
			c.set(false)
		}
		evs, ids := makeEvents(t, sensorA, fmt.Sprintf("cut-%d", i), 20)
		r := e.post(sensorA, ndjson(evs), nil)
		switch r.code {
		case http.StatusOK:
			require.Equal(t, 20, r.body.Accepted)
			for _, id := range ids {
				acked[id] = true
			}
		case http.StatusServiceUnavailable:
			require.NotEmpty(t, r.retryAfter)
			failed = append(failed, ndjson(evs))
		default:
			t.Fatalf("request %d: unexpected %d %s", i, r.code, r.raw)
		}
	}
	require.NotEmpty(t, failed, "requests while Kafka was cut got 503")
	// The sensor retries what got 503, once Kafka is back.
	for _, body := range failed {
		r := e.post(sensorA, body, nil)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var m map[string]any
			require.NoError(t, json.Unmarshal(l, &m))
			acked[m["event_id"].(string)] = true
		}
	}
	got := eventIDs(t, readAll(t, e.brokers, e.cfg.Topics.Raw))
	require.Len(t, acked, 12*20)
	for id := range acked {
		require.Equal(t, 1, got[id], "acknowledged event %s is in Kafka exactly once", id)
	}
}

func TestReadyAndMetrics(t *testing.T) {
	e := start(t, nil)
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.adminURL("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	good, _ := makeEvents(t, sensorA, "metrics", 3)
	require.Equal(t, http.StatusOK, e.post(sensorA, ndjson(good), nil).code)
	resp, err := http.Get(e.adminURL("/metrics"))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"vigie_ingest_events_accepted_total 3", "vigie_ingest_request_duration_seconds", "vigie_ingest_produce_duration_seconds", `vigie_ingest_requests_total{code="200"} 1`} {
		require.Contains(t, string(b), m)
	}
}
