package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
	"github.com/vigie/vigie/services/simulator/internal/report"
)

// TestPipelineSecure runs the pipeline end to end with every connection as in production:
// Kafka — the services', vigiectl's and the test's own — on a SASL_SSL listener (TLS under the
// broker instance's own CA, SCRAM-SHA-512: deploy/local/kafka.sh with KAFKA_SECURE=1), and
// ClickHouse over TLS (a chserver of the test's own with -tls-cert). Counted like the fault
// tests: every acknowledged identity one row, the rollups equal to the raw table, no clear
// identifier on the topics, in the tables or logs. A client without TLS, or with a wrong
// password, is refused.
func TestPipelineSecure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kc := startSecureBroker(t)

	plain := kafka.Config{Brokers: kc.Brokers}
	require.Error(t, kafka.Ping(ctx, plain), "a client without TLS and SASL is refused")
	wrong := kc
	wrong.SASL.PasswordFile = filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrong.SASL.PasswordFile, []byte("not-the-password\n"), 0o600))
	require.ErrorContains(t, kafka.Ping(ctx, wrong), "SASL Authentication", "a wrong password is refused")
	require.NoError(t, kafka.Ping(ctx, kc))

	cc := startTLSClickHouse(ctx, t)
	p := newPipelineWith(t, kc, cc, "sec")
	p.startServices("ingest", "enricher", "writer", "correlator")
	events := faultEvents(t, 31)
	p.logf("pipeline started over SASL_SSL, %d events to send", len(events))
	tr := newTracker(p)
	tr.send(ctx, t, events, sendOptions{Workers: 4, Batch: 200, Retry: true})
	require.Len(t, tr.ackedSet(), len(events), "every event acknowledged: %s", tr)
	p.checkCounted(ctx, tr, nil)
}

// startSecureBroker starts a broker of the test's own with a SASL_SSL listener and returns
// the client configuration kafka.sh wrote for it (client.env).
func startSecureBroker(t *testing.T) kafka.Config {
	t.Helper()
	b := startOwnBrokerEnv(t, "KAFKA_SECURE=1")
	f, err := os.Open(filepath.Join(b.dir, "client.env"))
	require.NoError(t, err)
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	require.NoError(t, sc.Err())
	return kafka.Config{
		Brokers: strings.Split(env["KAFKA_SECURE_BROKERS"], ","),
		TLS:     config.TLS{Enabled: true, CAFile: env["KAFKA_CA_FILE"]},
		SASL:    kafka.SASL{Mechanism: env["KAFKA_SASL_MECHANISM"], Username: env["KAFKA_SASL_USERNAME"], PasswordFile: env["KAFKA_SASL_PASSWORD_FILE"]},
	}
}

// startTLSClickHouse starts a chserver of the test's own whose interfaces speak TLS only,
// under a CA made for it, and returns the client configuration that trusts that CA.
func startTLSClickHouse(ctx context.Context, t *testing.T) clickhouse.Config {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	bin := filepath.Join(dir, "chserver")
	build := exec.Command("go", "build", "-o", bin, "./cmd/chserver")
	build.Dir = filepath.Join(root, "deploy/local/chserver")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build chserver: %s", out)
	caFile, certFile, keyFile := writeTestCA(t, dir)
	addr := freeAddr(t)
	logPath := filepath.Join(dir, "chserver.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	// The local server's users: every process of the test (services, vigiectl) has
	// testenv's credentials in its environment.
	user, password := testenv.ClickHouseUser()
	if password == "" {
		password = "tls-test" // the shared server has no users yet: only the test's own reads log in
	}
	usersFile := filepath.Join(dir, "users")
	require.NoError(t, os.WriteFile(usersFile, []byte(user+":"+password+":admin\n"), 0o600))
	cmd := exec.Command(bin, "-listen", addr, "-http", "off", "-data", filepath.Join(dir, "data"),
		"-lib", filepath.Join(root, ".cache/chdb/libchdb.so"), "-tls-cert", certFile, "-tls-key", keyFile,
		"-users-file", usersFile, "-roles", filepath.Join(root, "schemas/clickhouse/roles"))
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("chserver (TLS) log:\n%s", tail(string(log), 3000))
		}
	})
	cc := clickhouse.DefaultConfig()
	cc.Addrs, cc.Database = []string{addr}, "default"
	cc.Username, cc.Password = user, password
	cc.TLS = config.TLS{Enabled: true, CAFile: caFile}
	require.Eventually(t, func() bool {
		conn, err := report.OpenWith(ctx, cc)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}, 90*time.Second, 300*time.Millisecond, "chserver over TLS not ready at %s", addr)

	plain := cc
	plain.TLS = config.TLS{}
	plain.DialTimeout = 2 * time.Second
	_, err = report.OpenWith(ctx, plain)
	require.Error(t, err, "a client without TLS gets nothing from the TLS server")
	return cc
}

// writeTestCA writes a CA and a certificate it signs for 127.0.0.1 into dir (PEM).
func writeTestCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigie e2e test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	write := func(name, typ string, der []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode))
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER, 0o644), write("server.pem", "CERTIFICATE", leafDER, 0o644), write("server.key", "PRIVATE KEY", keyDER, 0o600)
}
