package app_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/ingest/internal/app"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// TestGracefulShutdownAnswersInFlight starts a request, begins the shutdown while its body
// is still arriving, and checks that it is answered 200 and its events are stored.
func TestGracefulShutdownAnswersInFlight(t *testing.T) {
	e := start(t, nil)
	evs, ids := makeEvents(t, sensorA, "shutdown", 40)
	body := ndjson(evs)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, e.url, pr)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+e.tokens[sensorA])
	type result struct {
		code int
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// A connection of its own: a kept-alive idle one may be closed by the shutdown before
		// the server reads the request on it, which any HTTP client must expect.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{code: resp.StatusCode, body: b}
	}()
	half := len(body) / 2
	_, err = pw.Write(body[:half]) // returns once the client is sending the body
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(metrics(t, e), "vigie_ingest_requests_in_flight 1")
	}, 10*time.Second, 5*time.Millisecond, "the server is handling the request")

	e.cancel() // SIGTERM equivalent
	require.Eventually(t, func() bool {
		resp, err := http.Get(e.adminURL("/readyz"))
		if err != nil {
			return true
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, 10*time.Millisecond, "not ready once stopping")

	_, err = pw.Write(body[half:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.code, string(r.body))
	var resp server.Response
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Equal(t, 40, resp.Accepted)
	require.NoError(t, <-e.done)
	e.cancel = nil
	got := eventIDs(t, readAll(t, e.brokers, e.cfg.Topics.Raw))
	for _, id := range ids {
		require.Equal(t, 1, got[id])
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "vigie test ca", true)
	srv, srvKey := newCert(t, ca, caKey, "127.0.0.1", false)
	cli, cliKey := newCert(t, ca, caKey, sensorA, false)
	write := func(name string, blocks ...*pem.Block) string {
		var buf bytes.Buffer
		for _, b := range blocks {
			require.NoError(t, pem.Encode(&buf, b))
		}
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o600))
		return p
	}
	caFile := write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	e := start(t, func(c *app.Config) {
		c.TLS.CertFile = write("server.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srv.Raw})
		c.TLS.KeyFile = write("server-key.pem", keyBlock(t, srvKey))
		c.TLS.ClientCAFile = caFile
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	evs, _ := makeEvents(t, sensorA, "tls", 3)
	url := e.url
	do := func(certs []tls.Certificate) (*http.Response, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(ndjson(evs)))
		req.Header.Set("Authorization", "Bearer "+e.tokens[sensorA])
		return c.Do(req)
	}
	resp, err := do([]tls.Certificate{{Certificate: [][]byte{cli.Raw}, PrivateKey: cliKey}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = do(nil)
	require.Error(t, err, "a client without a certificate is refused")
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  isCA,
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func keyBlock(t *testing.T, k *ecdsa.PrivateKey) *pem.Block {
	der, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	return &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
}

func metrics(t *testing.T, e *env) string {
	resp, err := http.Get(e.adminURL("/metrics"))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
