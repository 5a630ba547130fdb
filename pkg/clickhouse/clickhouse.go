// Package clickhouse is the one way a Vigie service opens ClickHouse: one configuration
// block, the same in every service,
//
//	clickhouse:
//	  addrs: [127.0.0.1:19000]
//	  database: vigie
//	  username: default
//	  password_file: /run/secrets/clickhouse   # or password: "..."; the file wins
//	  tls: {enabled: false, ca_file: "", cert_file: "", key_file: "", server_name: "", insecure_skip_verify: false}
//	  dial_timeout: 5s
//	  query_timeout: 60s
//	  max_open_conns: 8
//	  compression: lz4                          # none | lz4 | zstd
//
// and one opener, which fails only on a bad configuration. A server that is down at start is
// not an error (CONVENTIONS 16): Open logs it and returns the connection, which connects
// when first used; the Ping readiness check shows the outage.
//
//	conn, err := clickhouse.Open(ctx, cfg.ClickHouse, s.Logger)
//	if err != nil {
//		return err
//	}
//	s.OnClose(conn.Close)
//	s.AddCheck("clickhouse", clickhouse.Ping(conn))
package clickhouse

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/config"
)

// Config says where ClickHouse is and how to talk to it.
type Config struct {
	// Addrs are native-protocol host:port addresses, tried in order.
	Addrs []string `yaml:"addrs"`
	// Database is the database the service's statements name ({db} in chmigrate.Bind). The
	// session itself starts in "default": the database may not exist before the migrations.
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	// Password is for development; PasswordFile, when set, wins, and is read with
	// config.ReadSecret (mode 0600 or stricter).
	Password     string     `yaml:"password"`
	PasswordFile string     `yaml:"password_file"`
	TLS          config.TLS `yaml:"tls"`
	// DialTimeout bounds connecting (and the ping at Open); QueryTimeout bounds waiting for
	// the server during one query or insert.
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxOpenConns caps the pool (also its idle connections).
	MaxOpenConns int `yaml:"max_open_conns"`
	// Compression of blocks on the wire: none, lz4 or zstd.
	Compression string `yaml:"compression"`
}

// DefaultConfig suits the local server `make up` starts: its address, and the user and
// password of the environment's CLICKHOUSE_USER and CLICKHOUSE_PASSWORD when set (the local
// tools and tests read them from .state/env), else default with no password.
func DefaultConfig() Config {
	user, password := "default", ""
	if u := os.Getenv("CLICKHOUSE_USER"); u != "" {
		user, password = u, os.Getenv("CLICKHOUSE_PASSWORD")
	}
	return Config{
		Addrs:        []string{"127.0.0.1:19000"},
		Database:     "vigie",
		Username:     user,
		Password:     password,
		DialTimeout:  5 * time.Second,
		QueryTimeout: 60 * time.Second,
		MaxOpenConns: 8,
		Compression:  "lz4",
	}
}

var compressions = map[string]ch.CompressionMethod{
	"none": ch.CompressionNone, "lz4": ch.CompressionLZ4, "zstd": ch.CompressionZSTD,
}

// Validate names the bad key under prefix (e.g. "clickhouse.addrs"). It reads no file: Open
// does.
func (c Config) Validate(prefix string) error {
	if len(c.Addrs) == 0 {
		return fmt.Errorf("%s.addrs: must not be empty", prefix)
	}
	for _, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s.addrs: %w", prefix, err)
		}
	}
	if _, err := chmigrate.Bind("", c.Database); err != nil {
		return fmt.Errorf("%s.database: %w", prefix, err)
	}
	switch {
	case c.DialTimeout <= 0:
		return fmt.Errorf("%s.dial_timeout: %s must be positive", prefix, c.DialTimeout)
	case c.QueryTimeout <= 0:
		return fmt.Errorf("%s.query_timeout: %s must be positive", prefix, c.QueryTimeout)
	case c.MaxOpenConns <= 0:
		return fmt.Errorf("%s.max_open_conns: %d must be positive", prefix, c.MaxOpenConns)
	}
	if _, ok := compressions[c.Compression]; !ok {
		return fmt.Errorf("%s.compression: %q is not none, lz4 or zstd", prefix, c.Compression)
	}
	return c.TLS.Validate(prefix + ".tls")
}

// Options returns the clickhouse-go options c describes, reading the password file and the
// TLS files. Open uses it; a command that needs to adjust an option (settings, a dialer in
// tests) can start from it.
func (c Config) Options() (*ch.Options, error) {
	password := c.Password
	if c.PasswordFile != "" {
		p, err := config.ReadSecret(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse password_file: %w", err)
		}
		password = p
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse %w", err)
	}
	method, ok := compressions[c.Compression]
	if !ok {
		return nil, fmt.Errorf("clickhouse compression: %q is not none, lz4 or zstd", c.Compression)
	}
	return &ch.Options{
		Addr:             c.Addrs,
		Auth:             ch.Auth{Username: c.Username, Password: password},
		TLS:              tc,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.QueryTimeout,
		MaxOpenConns:     c.MaxOpenConns,
		MaxIdleConns:     c.MaxOpenConns,
		Compression:      &ch.Compression{Method: method},
		ConnOpenStrategy: ch.ConnOpenInOrder,
	}, nil
}

// Open returns a connection pool to the servers c names, and pings them once within the
// dial timeout. It fails only on a bad configuration (an unreadable or too readable password
// file, TLS files that do not load): a server that does not answer is logged as a warning
// and the pool returned, to connect when first used. logger may be nil.
func Open(ctx context.Context, c Config, logger *zap.Logger) (driver.Conn, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", c.Addrs, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	defer cancel()
	if err := conn.Ping(pingCtx); err != nil {
		logger.Warn("clickhouse not reachable yet; will connect when used", zap.Strings("addrs", c.Addrs), zap.Error(err))
	}
	return conn, nil
}

// Ping is a readiness check: nil while a server answers.
func Ping(conn driver.Conn) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := conn.Ping(ctx); err != nil {
			return fmt.Errorf("ping clickhouse: %w", err)
		}
		return nil
	}
}
