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
	// Users maps user names to their password and role; every user has both.
	Users map[string]User
	// Roles are the roles users have (LoadRoles): the engine must have been opened with
	// their configuration (OpenEngine).
	Roles Roles
	// Database is the Vigie database ({db} of the role files): the current database of a
	// client that names none, when its role has no grant on every database (as a production
	// user's DEFAULT DATABASE).
	Database string
	// AllowedOrigins are the browser origins (scheme://host:port) whose requests the HTTP
	// interface accepts; a request from any other origin, or from another site, is refused.
	AllowedOrigins []string
	// SpoolMemory is how many bytes of a result are kept in memory before spilling to disk.
	SpoolMemory int
	// HandshakeTimeout bounds the client's hello.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds how long running queries may finish after a shutdown signal.
	ShutdownTimeout time.Duration
	// MaxQueries is how many statements run on the engine at once (its pool of chDB
	// connections). Reads (SELECT, SHOW, ...) take at most MaxQueries-1 of them, so inserts
	// and DDL never wait for a read.
	MaxQueries int
	// QueueWait is how long a statement waits for a free slot before it fails with
	// TOO_MANY_SIMULTANEOUS_QUERIES (202).
	QueueWait time.Duration
	// MaxExecutionTime is the default max_execution_time of reads (a client's own setting
	// wins); 0 for none.
	MaxExecutionTime time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ListenAddr:       "127.0.0.1:19000",
		HTTPListenAddr:   "127.0.0.1:18123",
		DataDir:          ".state/clickhouse",
		Database:         "vigie",
		SpoolMemory:      64 << 20,
		HandshakeTimeout: 10 * time.Second,
		ShutdownTimeout:  10 * time.Second,
		MaxQueries:       8,
		QueueWait:        5 * time.Second,
		MaxExecutionTime: 10 * time.Minute,
	}
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
		return errors.New("users: at least one user is needed (name:password:role)")
	}
	for name, u := range c.Users {
		if u.Password == "" {
			return fmt.Errorf("users: user %s has an empty password: every user needs one (there is no anonymous access)", name)
		}
		if _, ok := c.Roles.Lookup(u.Role); !ok {
			return fmt.Errorf("users: user %s has role %q, which the role files do not create (roles: %s)", name, u.Role, strings.Join(c.Roles.names(), ", "))
		}
	}
	if c.SpoolMemory <= 0 {
		return errors.New("spool memory must be positive")
	}
	if c.HandshakeTimeout <= 0 || c.ShutdownTimeout <= 0 || c.QueueWait <= 0 {
		return errors.New("timeouts must be positive")
	}
	if c.MaxQueries < 2 {
		return fmt.Errorf("max queries %d: at least 2 (one is kept for inserts and DDL)", c.MaxQueries)
	}
	if c.MaxExecutionTime < 0 {
		return errors.New("max execution time must not be negative")
	}
	return nil
}
