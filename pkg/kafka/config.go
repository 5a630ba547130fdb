package kafka

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/vigie/vigie/pkg/config"
)

// Config is how a service reaches Kafka: the bootstrap brokers and the connection's
// security. It is the `kafka:` block of every service's configuration; what a service
// consumes or produces is configured beside it (ConsumerConfig, ProducerConfig, topics).
type Config struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string `yaml:"brokers"`
	// TLS encrypts (and with a client certificate, authenticates) the connections.
	TLS config.TLS `yaml:"tls"`
	// SASL authenticates the client; empty mechanism means none.
	SASL SASL `yaml:"sasl"`
}

// SASL is the client's SASL authentication. The password lives in a file (mode 0600), never
// in the configuration itself.
type SASL struct {
	// Mechanism is "" (none), "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user.
	Username string `yaml:"username"`
	// PasswordFile holds the password; it is read each time a dialer or transport is built,
	// so that a reload picks up a rotated password.
	PasswordFile string `yaml:"password_file"`
}

// SASL mechanism names accepted in SASL.Mechanism.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// dialTimeout bounds one TCP (and TLS, SASL) connection set-up to a broker.
const dialTimeout = 10 * time.Second

// DefaultConfig is the local broker that `make up` starts, without TLS or SASL.
func DefaultConfig() Config {
	return Config{Brokers: []string{"127.0.0.1:19092"}}
}

// Validate names the first bad key; prefix is the block's place in the service's
// configuration, normally "kafka". It does not read the password file: Dialer and Transport
// do, and fail on an unreadable one.
func (c Config) Validate(prefix string) error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("%s.brokers: must not be empty", prefix)
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("%s.brokers: %q is not host:port", prefix, b)
		}
	}
	if err := c.TLS.Validate(prefix + ".tls"); err != nil {
		return err
	}
	return c.SASL.validate(prefix + ".sasl")
}

func (s SASL) validate(prefix string) error {
	switch strings.ToLower(s.Mechanism) {
	case "":
		if s.Username != "" || s.PasswordFile != "" {
			return fmt.Errorf("%s.mechanism: must be set when username or password_file is", prefix)
		}
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("%s.mechanism: %q is not \"\", %s, %s or %s", prefix, s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	if s.Username == "" {
		return fmt.Errorf("%s.username: must be set with mechanism %s", prefix, s.Mechanism)
	}
	if s.PasswordFile == "" {
		return fmt.Errorf("%s.password_file: must be set with mechanism %s", prefix, s.Mechanism)
	}
	return nil
}

// mechanism builds the SASL mechanism, reading the password file; nil when SASL is off.
func (s SASL) mechanism() (sasl.Mechanism, error) {
	mech := strings.ToLower(s.Mechanism)
	if mech == "" {
		return nil, nil
	}
	password, err := config.ReadSecret(s.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("kafka sasl password: %w", err)
	}
	switch mech {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: password}, nil
	case SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, password)
	case SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, password)
	}
	return nil, fmt.Errorf("kafka sasl: unknown mechanism %q", s.Mechanism)
}

func (c Config) security() (*tls.Config, sasl.Mechanism, error) {
	tlsCfg, err := c.TLS.Config()
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	mech, err := c.SASL.mechanism()
	if err != nil {
		return nil, nil, err
	}
	return tlsCfg, mech, nil
}

// Dialer returns a kafka-go dialer with the connection's TLS and SASL, for readers and
// consumer groups. It fails on an unreadable certificate or password file.
func (c Config) Dialer() (*kafkago.Dialer, error) {
	tlsCfg, mech, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafkago.Dialer{
		Timeout:       dialTimeout,
		DualStack:     true,
		KeepAlive:     30 * time.Second,
		TLS:           tlsCfg,
		SASLMechanism: mech,
	}, nil
}

// Transport returns a kafka-go transport with the connection's TLS and SASL, for writers
// and kafka-go Clients. The caller owns it: CloseIdleConnections when done with it.
// It fails on an unreadable certificate or password file.
func (c Config) Transport() (*kafkago.Transport, error) {
	tlsCfg, mech, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{
		DialTimeout: dialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 6 * time.Second,
		ClientID:    "vigie",
		TLS:         tlsCfg,
		SASL:        mech,
	}, nil
}
