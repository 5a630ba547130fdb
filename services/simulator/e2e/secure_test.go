package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
)

// TestPipelineSecure runs the pipeline end to end with every Kafka connection — the
// services', vigiectl's and the test's own reads — on a SASL_SSL listener as in production:
// TLS under the broker instance's own CA, SCRAM-SHA-512 (deploy/local/kafka.sh with
// KAFKA_SECURE=1). Counted like the fault tests: every acknowledged identity one row, the
// rollups equal to the raw table, no clear identifier on the topics, in the tables or logs.
// A client without TLS, or with a wrong password, is refused.
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

	p := newPipelineWith(t, kc, testenv.ClickHouseAddr(t), "sec")
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
