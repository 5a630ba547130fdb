package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/config"
)

type admin struct {
	Listen string `yaml:"listen"`
}

// base stands for service.Base: embedded inline in every service's configuration.
type base struct {
	Admin           admin         `yaml:"admin"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

type topics struct {
	Raw string `yaml:"raw"`
}

type inlineConfig struct {
	base   `yaml:",inline"`
	Topics topics     `yaml:"topics"`
	TLS    config.TLS `yaml:"tls"`
}

func (c *inlineConfig) Validate() error {
	if c.Admin.Listen == "" {
		return errors.New("admin.listen: must be set")
	}
	return c.TLS.Validate("tls")
}

func TestInlineKeysSitAtTheParentLevel(t *testing.T) {
	path := writeFile(t, "admin: {listen: 127.0.0.1:1}\nshutdown_timeout: 5s\ntopics: {raw: r}\n")
	t.Setenv("VIGIE_TEST_ADMIN_LISTEN", "127.0.0.1:2")
	cfg := &inlineConfig{base: base{Admin: admin{Listen: "default:0"}}}
	require.NoError(t, config.Load(cfg, "VIGIE_TEST", []string{"-config", path, "-shutdown_timeout=7s"}))
	require.Equal(t, "127.0.0.1:2", cfg.Admin.Listen, "env VIGIE_TEST_ADMIN_LISTEN, no BASE_ in the name")
	require.Equal(t, 7*time.Second, cfg.ShutdownTimeout, "flag -shutdown_timeout")
	require.Equal(t, "r", cfg.Topics.Raw)

	cfg = &inlineConfig{}
	require.NoError(t, config.Load(cfg, "VIGIE_TEST", []string{"-admin.listen=x:1", "-tls.enabled", "-tls.ca_file=/ca.pem"}))
	require.Equal(t, "x:1", cfg.Admin.Listen)
	require.Equal(t, config.TLS{Enabled: true, CAFile: "/ca.pem"}, cfg.TLS)

	// The inline struct has no key of its own.
	err := config.Load(&inlineConfig{}, "VIGIE_TEST", []string{"-config", writeFile(t, "base: {admin: {listen: a:1}}\n")})
	require.ErrorContains(t, err, "field base not found")
	err = config.Load(&inlineConfig{}, "VIGIE_TEST", []string{"-base.admin.listen=a:1"})
	require.ErrorContains(t, err, "flag provided but not defined: -base.admin.listen")
	err = config.Load(&inlineConfig{}, "VIGIE_TEST", []string{"-config", writeFile(t, "admin: {listen: a:1, port: 2}\n")})
	require.ErrorContains(t, err, "field port not found", "unknown keys under an inline struct are errors")
}

type clashConfig struct {
	base  `yaml:",inline"`
	Admin admin `yaml:"admin"`
}

func (*clashConfig) Validate() error { return nil }

func TestInlineKeyDefinedTwiceIsAnError(t *testing.T) {
	err := config.Load(&clashConfig{}, "VIGIE_TEST", nil)
	require.ErrorContains(t, err, "key admin.listen is defined twice, by clashConfig.base.Admin.Listen and clashConfig.Admin.Listen")
}

func TestTLSValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name    string
		tls     config.TLS
		wantErr string
	}{
		{name: "disabled ignores the rest", tls: config.TLS{CertFile: "c.pem"}},
		{name: "enabled, system roots", tls: config.TLS{Enabled: true}},
		{name: "cert without key", tls: config.TLS{Enabled: true, CertFile: "c.pem"}, wantErr: "kafka.tls.cert_file, kafka.tls.key_file: set both or neither"},
		{name: "key without cert", tls: config.TLS{Enabled: true, KeyFile: "k.pem"}, wantErr: "kafka.tls.cert_file, kafka.tls.key_file"},
		{name: "skip verify with a CA", tls: config.TLS{Enabled: true, CAFile: "ca.pem", InsecureSkipVerify: true}, wantErr: "kafka.tls.insecure_skip_verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tls.Validate("kafka.tls")
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestTLSConfig(t *testing.T) {
	c, err := config.TLS{CAFile: "/nonexistent"}.Config()
	require.NoError(t, err)
	require.Nil(t, c, "not enabled: no TLS")

	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	c, err = config.TLS{Enabled: true, CAFile: certFile, CertFile: certFile, KeyFile: keyFile, ServerName: "vigie.test"}.Config()
	require.NoError(t, err)
	require.NotNil(t, c.RootCAs)
	require.Len(t, c.Certificates, 1)
	require.Equal(t, "vigie.test", c.ServerName)

	_, err = config.TLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}.Config()
	require.ErrorContains(t, err, "missing.pem")
	_, err = config.TLS{Enabled: true, CAFile: keyFile}.Config()
	require.ErrorContains(t, err, keyFile+": no PEM certificate")
	_, err = config.TLS{Enabled: true, CertFile: certFile, KeyFile: certFile}.Config()
	require.ErrorContains(t, err, "tls cert_file "+certFile)
}

func selfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigie.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	s, err := config.ReadSecret(write("ok", "s3cret\n", 0o600))
	require.NoError(t, err)
	require.Equal(t, "s3cret", s, "trailing newline trimmed")
	s, err = config.ReadSecret(write("ro", "a b\r\n", 0o400))
	require.NoError(t, err)
	require.Equal(t, "a b", s)

	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		p := write("open", "s3cret\n", mode)
		_, err = config.ReadSecret(p)
		require.ErrorIs(t, err, config.ErrSecretMode, "mode %o", mode)
		require.ErrorContains(t, err, p)
	}
	_, err = config.ReadSecret(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, filepath.Join(dir, "missing"))
	_, err = config.ReadSecret(write("empty", "\n", 0o600))
	require.ErrorContains(t, err, "empty")
	_, err = config.ReadSecret(dir)
	require.ErrorContains(t, err, dir)
}
