package server_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/vigie/vigie/services/ingest/internal/server"
)

func jammerAlarm(id string) string {
	return fmt.Sprintf(`{"event_id":%q,"sensor_id":"s1","observed_at":%q,"kind":"jammer_alarm","zone":"bat-a","jammer":{"jammer_id":"u2","alarm":"output_low","severity":"critical","bands":["B20"]}}`, id, observedAt)
}

// send posts body with token (none when empty) over a connection whose client certificate,
// when cert is set, is cert.
func send(h http.Handler, token, body string, cert *x509.Certificate) (*httptest.ResponseRecorder, server.ErrorResponse) {
	req := httptest.NewRequest(http.MethodPost, server.Path, bytes.NewBufferString(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cert != nil {
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var e server.ErrorResponse
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return w, e
}

// TestKindNotAllowedForSensor: a jammer's token posting what a managed access system sees
// (a mas_attach with an IMSI) is refused whole, 403 kind_not_allowed_for_sensor, before
// anything is stored or dead-lettered; the events it may post are stored, those of the
// refused request included when sent again alone.
func TestKindNotAllowedForSensor(t *testing.T) {
	raw, dlq := &memProducer{}, &memProducer{}
	h := newServerDLQ(t, raw, dlq)
	bad := `{"event_id":"broken","sensor_id":"s1"}` // refused at the door, never dead-lettered here
	w, e := send(h, "j", jammerAlarm("a")+"\n"+bad+"\n"+event("b")+"\n", nil)
	require.Equal(t, http.StatusForbidden, w.Code, w.Body.String())
	require.Equal(t, server.CodeKindNotAllowed, e.Code)
	require.Contains(t, e.Error, "sensor s1 is a jammer")
	require.Contains(t, e.Error, "the event at position 2 (line 3) is a mas_attach")
	require.NotContains(t, w.Body.String(), "208150123456789")
	require.Empty(t, raw.msgs, "nothing of the request stored")
	require.Empty(t, dlq.msgs, "nor dead-lettered")

	w, _ = send(h, "j", jammerAlarm("a")+"\n", nil)
	require.Equal(t, http.StatusOK, w.Code, "the refused request reserved nothing: %s", w.Body.String())
	require.Contains(t, w.Body.String(), `"accepted":1`)
	w, _ = send(h, "t", event("b")+"\n", nil)
	require.Equal(t, http.StatusOK, w.Code, "a managed access system may post it")
	require.Len(t, raw.msgs, 2)

	w, e = send(h, "t", jammerAlarm("c")+"\n", nil)
	require.Equal(t, http.StatusForbidden, w.Code, "nor the other way round")
	require.Equal(t, server.CodeKindNotAllowed, e.Code)
}

// TestCertificateBoundToSensor: on an mTLS connection the client certificate must name the
// token's sensor (common name or DNS name).
func TestCertificateBoundToSensor(t *testing.T) {
	raw := &memProducer{}
	h := newServer(t, raw)
	w, e := send(h, "t", event("a")+"\n", &x509.Certificate{Subject: pkix.Name{CommonName: "s2"}, DNSNames: []string{"s3"}})
	require.Equal(t, http.StatusForbidden, w.Code)
	require.Equal(t, server.CodeCertificateNotForSensor, e.Code)
	require.Contains(t, e.Error, `common name "s2"`)
	require.Empty(t, raw.msgs)
	for _, c := range []*x509.Certificate{{Subject: pkix.Name{CommonName: "s1"}}, {Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"s1"}}} {
		w, _ = send(h, "t", event("a")+"\n", c)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}
}

// TestRefusalsLoggedAndCounted: every refused authentication or authorisation is logged
// with its reason (and the sensor when known), never with the token, and counted by reason;
// credentials that failed to load give 503 with Retry-After, not 401.
func TestRefusalsLoggedAndCounted(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	h := newServerWith(t, &memProducer{}, &memProducer{}, zap.New(core), reg)
	const secret = "vgs_not-a-token-of-anyone"

	w, _ := send(h, "", event("a")+"\n", nil)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	w, _ = send(h, secret, event("a")+"\n", nil)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, `Bearer realm="vigie-ingest"`, w.Header().Get("WWW-Authenticate"))
	w, _ = send(h, "down", event("a")+"\n", nil)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	w, _ = send(h, "j", event("a")+"\n", nil)
	require.Equal(t, http.StatusForbidden, w.Code)
	w, _ = send(h, "t", event("a")+"\n", &x509.Certificate{Subject: pkix.Name{CommonName: "s9"}})
	require.Equal(t, http.StatusForbidden, w.Code)

	var reasons []string
	for _, l := range logs.FilterMessage("request refused").All() {
		reasons = append(reasons, fmt.Sprintf("%v/%v", l.ContextMap()["reason"], l.ContextMap()["sensor_id"]))
		for _, v := range l.ContextMap() {
			require.NotContains(t, fmt.Sprint(v), secret)
		}
	}
	require.Equal(t, []string{"missing_token/", "unknown_token/", "credentials_unavailable/", "kind_not_allowed_for_sensor/s1", "certificate_not_for_sensor/s1"}, reasons)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP auth_refused_total Requests refused by authentication (401 missing_token, unknown_token; 503 credentials_unavailable) or authorisation (403 certificate_not_for_sensor, kind_not_allowed_for_sensor), by reason.
# TYPE auth_refused_total counter
auth_refused_total{reason="certificate_not_for_sensor"} 1
auth_refused_total{reason="credentials_unavailable"} 1
auth_refused_total{reason="kind_not_allowed_for_sensor"} 1
auth_refused_total{reason="missing_token"} 1
auth_refused_total{reason="unknown_token"} 1
`), "auth_refused_total"))
}
