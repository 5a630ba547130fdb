package validate

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
)

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// secretFiles makes, in dir, the secret files a configuration names (…_FILE=/run/secrets/x),
// with plausible content, mode 0400; it returns the environment with the paths moved there.
func secretFiles(t *testing.T, dir string, env map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range env {
		if !strings.HasPrefix(v, "/run/secrets/") {
			out[k] = v
			continue
		}
		name := strings.TrimPrefix(v, "/run/secrets/")
		p := filepath.Join(dir, name)
		out[k] = p
		if _, err := os.Stat(p); err == nil {
			continue
		}
		var content []byte
		switch {
		case strings.Contains(name, "pseudonym"):
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			content = []byte("active: k1\ndefault_country_code: \"33\"\nblock_key: " + strings.Repeat("b7", 32) + "\nkeys:\n  k1: " + hex.EncodeToString(key) + "\n")
		case strings.Contains(name, "credentials"):
			cmd := exec.Command(filepath.Join(binaries(t), "ingest-credentials"), "-file", p, "-type", "mas", "-sensor", "cp-aix-luynes-mas-01")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "ingest-credentials: %s", out)
			require.NoError(t, os.Chmod(p, 0o400))
			continue
		case strings.HasSuffix(name, ".crt"):
			content = selfSignedCA(t)
		default:
			content = []byte("not-a-real-password\n")
		}
		require.NoError(t, os.WriteFile(p, content, 0o400))
	}
	return out
}

func selfSignedCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// startsWith runs a service's binary with a deployment's configuration (its environment and
// arguments; secret files made up, listen addresses and the Kafka and ClickHouse addresses
// moved to free loopback ports, where nothing answers): the configuration must validate, /healthz must
// answer through the image's healthcheck, /readyz must say not ready (its dependencies are
// absent: waiting, not exiting), and SIGTERM must end it with status 0.
func startsWith(t *testing.T, target string, env map[string]string, args []string) {
	t.Helper()
	require.NoError(t, start(t, target, env, args))
}

func start(t *testing.T, target string, env map[string]string, args []string) error {
	t.Helper()
	prefix := "VIGIE_" + strings.ToUpper(target) + "_"
	env = secretFiles(t, t.TempDir(), env)
	admin := freeAddr(t)
	env[prefix+"ADMIN_LISTEN"] = admin
	if _, ok := env[prefix+"LISTEN"]; ok {
		env[prefix+"LISTEN"] = freeAddr(t)
	}
	env[prefix+"SHUTDOWN_TIMEOUT"] = "5s"
	// Kafka and ClickHouse: a closed loopback port each, so that nothing leaves the machine
	// (not even a DNS query for kafka-1).
	for k := range env {
		if strings.HasSuffix(k, "_KAFKA_BROKERS") || strings.HasSuffix(k, "_CLICKHOUSE_ADDRS") {
			env[k] = freeAddr(t)
		}
	}
	cmd := exec.Command(filepath.Join(binaries(t), target), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	probe := func(path string) error {
		return exec.Command(filepath.Join(binaries(t), "healthcheck"), "http://"+admin+path).Run()
	}
	deadline := time.Now().Add(30 * time.Second)
	for probe("/healthz") != nil {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited before answering /healthz (%v):\n%s", target, err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: /healthz never answered:\n%s", target, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if probe("/readyz") == nil {
		return fmt.Errorf("%s is ready without Kafka or ClickHouse", target)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("%s: SIGTERM ended it with %v:\n%s", target, err, logs.String())
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30 s of SIGTERM:\n%s", target, logs.String())
	}
}

// TestComposeConfigurationStarts runs each long-running Vigie service of the compose file
// with the configuration compose gives it.
func TestComposeConfigurationStarts(t *testing.T) {
	p, err := loadCompose(t, readCompose(t))
	require.NoError(t, err)
	binaries(t)
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Build == nil || s.Restart == "no" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			startsWith(t, s.Build.Target, envOf(s), s.Command)
		})
	}
}

func envOf(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// TestStartCatchesABadConfiguration: a value that does not validate, or a secret file that
// others can read, stops the start.
func TestStartCatchesABadConfiguration(t *testing.T) {
	p, err := loadCompose(t, readCompose(t))
	require.NoError(t, err)
	env := envOf(p.Services["writer"])
	env["VIGIE_WRITER_CONSUMER_BATCH_SIZE"] = "0"
	require.ErrorContains(t, start(t, "writer", env, nil), "exited before answering")

	env = envOf(p.Services["writer"])
	dir := t.TempDir()
	pw := filepath.Join(dir, "clickhouse_vigie_password")
	require.NoError(t, os.WriteFile(pw, []byte("pw\n"), 0o440))
	env["VIGIE_WRITER_CLICKHOUSE_PASSWORD_FILE"] = pw
	require.ErrorContains(t, start(t, "writer", env, nil), "readable by group or others")
}

// TestKubernetesConfigurationStarts does the same with the prod overlay's Deployments (Kafka
// over TLS with SCRAM, secret files where secretcopy puts them).
func TestKubernetesConfigurationStarts(t *testing.T) {
	objs, err := buildOverlay(t, path(t, "deploy", "k8s", "overlays", "prod"))
	require.NoError(t, err)
	require.Empty(t, decodeAll(t, objs))
	binaries(t)
	for _, d := range find[*appsv1.Deployment](objs) {
		c := d.Spec.Template.Spec.Containers[0]
		target := vigieTarget(c.Image)
		if target == "" {
			continue
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			startsWith(t, target, env, c.Args)
		})
	}
}
