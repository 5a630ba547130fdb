package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the server's configuration.
type Config struct {
	// ListenAddr is the TCP address of the native protocol, 127.0.0.1:19000 by default.
	ListenAddr string
	// HTTPListenAddr is the TCP address of the HTTP interface, 127.0.0.1:18123 by default;
	// empty turns it off.
	HTTPListenAddr string
	// DataDir is chDB's data folder; only one process may use it.
	DataDir string
	// TmpDir holds insert files and spooled results; DataDir/tmp when empty.
	TmpDir string
	// Users maps user names to passwords.
	Users map[string]string
	// SpoolMemory is how many bytes of a result are kept in memory before spilling to disk.
	SpoolMemory int
	// HandshakeTimeout bounds the client's hello.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds how long running queries may finish after a shutdown signal.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddr:       "127.0.0.1:19000",
		HTTPListenAddr:   "127.0.0.1:18123",
		DataDir:          ".state/clickhouse",
		Users:            map[string]string{"default": ""},
		SpoolMemory:      64 << 20,
		HandshakeTimeout: 10 * time.Second,
		ShutdownTimeout:  10 * time.Second,
	}
}

// ParseUsers reads "name:password,name2:password2" ("default:" is the user default with an
// empty password).
func ParseUsers(s string) (map[string]string, error) {
	users := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, password, ok := strings.Cut(item, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("users: %q is not name:password", item)
		}
		users[name] = password
	}
	return users, nil
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("listen address %q: %w", c.ListenAddr, err)
	}
	if c.HTTPListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPListenAddr); err != nil {
			return fmt.Errorf("http listen address %q: %w", c.HTTPListenAddr, err)
		}
	}
	if c.DataDir == "" {
		return errors.New("data dir is empty")
	}
	if len(c.Users) == 0 {
		return errors.New("users: at least one user is needed")
	}
	if c.SpoolMemory <= 0 {
		return errors.New("spool memory must be positive")
	}
	if c.HandshakeTimeout <= 0 || c.ShutdownTimeout <= 0 {
		return errors.New("timeouts must be positive")
	}
	return nil
}
