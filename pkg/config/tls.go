package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is the client side of a TLS connection to a dependency (Kafka, ClickHouse), the same
// block under every key that has one:
//
//	kafka:
//	  tls: {enabled: true, ca_file: /etc/vigie/ca.pem, cert_file: "", key_file: "", server_name: "", insecure_skip_verify: false}
//
// With Enabled false every other field is ignored and the connection is in clear.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the authorities that sign the server's certificate; empty
	// means the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile, both or neither, are a client certificate (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate (default: the host
	// dialled).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. For tests only: it lets anyone on
	// the path read and change the traffic.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks the fields that can be checked without reading the files, naming the bad
// key under prefix (e.g. "kafka.tls").
func (t TLS) Validate(prefix string) error {
	if !t.Enabled {
		return nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%s.cert_file, %s.key_file: set both or neither", prefix, prefix)
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		return fmt.Errorf("%s.insecure_skip_verify: contradicts %s.ca_file (nothing would be verified against it)", prefix, prefix)
	}
	return nil
}

// Config reads the files and returns the client configuration, or nil, nil when TLS is not
// enabled. Errors name the file and what is wrong with it: a service does not start with a
// TLS setting it cannot honour.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	if err := t.Validate("tls"); err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: %w", t.CAFile, errNoPEM)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file %s, key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

var errNoPEM = errors.New("no PEM certificate in the file")
