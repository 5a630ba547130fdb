// Package testenv gives integration tests the addresses of the local infrastructure that
// `make up` starts (Kafka, the local ClickHouse server), its credentials, and unique names for
// their topics, groups and databases so that tests can run in parallel against one broker.
//
// An address comes from the environment first (KAFKA_BROKERS, CLICKHOUSE_ADDR), else from the
// env file `.state/env` that `make up` writes at the repository root. A test that needs an
// address that is not configured fails: a skipped integration test is not a passing one.
//
// The ClickHouse credentials (CLICKHOUSE_USER and CLICKHOUSE_PASSWORD, the administrator;
// CLICKHOUSE_ANALYST_USER and CLICKHOUSE_ANALYST_PASSWORD, the read-only analyst) are exported
// from the env file into the test process's environment when the package loads, unless the
// environment has them already: pkg/clickhouse's DefaultConfig, and every process a test
// starts, then use them. An env file without them (a server started before it had users)
// leaves the default user without a password.
package testenv

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// EnvFile is the path, relative to the repository root, of the file `make up` writes.
const EnvFile = ".state/env"

// KafkaBrokers returns the Kafka bootstrap addresses, e.g. ["127.0.0.1:19092"].
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(Lookup(t, "KAFKA_BROKERS"), ",")
}

// ClickHouseCredentials are the env file's keys exported into the environment at load.
var ClickHouseCredentials = []string{"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_ANALYST_USER", "CLICKHOUSE_ANALYST_PASSWORD"}

func init() {
	if os.Getenv("CLICKHOUSE_USER") != "" {
		return // the environment says who the tests are: the env file does not add to it
	}
	_, vars, err := readEnvFile()
	if err != nil {
		return
	}
	for _, k := range ClickHouseCredentials {
		if v := vars[k]; v != "" {
			_ = os.Setenv(k, v)
		}
	}
}

// ClickHouseUser returns the administrator's user and password (default and none when the
// server has no users).
func ClickHouseUser() (user, password string) {
	if u := os.Getenv("CLICKHOUSE_USER"); u != "" {
		return u, os.Getenv("CLICKHOUSE_PASSWORD")
	}
	return "default", ""
}

// ClickHouseAnalyst returns the read-only analyst's user and password, or ClickHouseUser's
// when the server has no users.
func ClickHouseAnalyst() (user, password string) {
	if u := os.Getenv("CLICKHOUSE_ANALYST_USER"); u != "" {
		return u, os.Getenv("CLICKHOUSE_ANALYST_PASSWORD")
	}
	return ClickHouseUser()
}

// ClickHouseAddr returns the native-protocol address of the ClickHouse server.
func ClickHouseAddr(t testing.TB) string {
	t.Helper()
	return Lookup(t, "CLICKHOUSE_ADDR")
}

// Lookup returns the value of key from the environment or the env file, failing the test
// when neither has it.
func Lookup(t testing.TB, key string) string {
	t.Helper()
	if v := os.Getenv(key); v != "" {
		return v
	}
	path, vars, err := readEnvFile()
	if err != nil {
		t.Fatalf("testenv: %s is not set and %s cannot be read (%v): run `make up` first", key, EnvFile, err)
	}
	v, ok := vars[key]
	if !ok || v == "" {
		t.Fatalf("testenv: %s is not set and %s has no %s: run `make up` first", key, path, key)
	}
	return v
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// Name returns a name unique to this test run, safe as a Kafka topic, consumer group or
// ClickHouse database name: prefix, the test's name and a random suffix.
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	base := strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "_"))
	if len(base) > 40 {
		base = base[:40]
	}
	return prefix + "_" + base + "_" + hex.EncodeToString(b[:])
}

// RepoRoot returns the repository root: the nearest parent of the working directory that
// holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

func readEnvFile() (string, map[string]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(root, EnvFile)
	f, err := os.Open(path)
	if err != nil {
		return path, nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vars[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return path, vars, sc.Err()
}
