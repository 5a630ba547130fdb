package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"
)

// target is a server the suite runs against.
type target struct {
	name string
	addr string
	// legacy is set for ClickHouse 18.16: only the protocol-level subset runs on it.
	legacy bool
}

// clickhouse18Addr is the address of the clickhouse-server 18.16 that TestMain starts.
var clickhouse18Addr string

// bothServers returns chserver and the real clickhouse-server 18.16.
func bothServers() []target {
	return []target{{name: "chserver", addr: chserverAddr}, {name: "clickhouse18", addr: clickhouse18Addr, legacy: true}}
}

// start18 starts clickhouse-server 18.16 in its own folder on a free port, with the config
// that deploy/local/clickhouse18.sh writes. The server is this process's child and is killed
// with it (Pdeathsig), so a test binary killed by a timeout leaves no server behind; the
// returned function stops it.
func start18(dir string) (func(), string, error) {
	const binary = "/usr/sbin/clickhouse-server"
	if _, err := os.Stat(binary); err != nil {
		return nil, "", fmt.Errorf("%s: %w (run `make deps` to install clickhouse-server 18.16)", binary, err)
	}
	script, err := repoFile("deploy/local/clickhouse18.sh")
	if err != nil {
		return nil, "", err
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	config := exec.Command("bash", script, "config")
	config.Env = append(os.Environ(), "CH18_DIR="+dir, fmt.Sprintf("CH18_TCP_PORT=%d", port))
	out, err := config.Output()
	if err != nil {
		return nil, "", fmt.Errorf("%s config: %w", script, err)
	}
	// Pdeathsig follows the thread that starts the child: TestMain's goroutine keeps it.
	runtime.LockOSThread()
	cmd := exec.Command(binary, "--config-file="+strings.TrimSpace(string(out)))
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return stop, addr, nil
		}
		select {
		case err := <-exited:
			return nil, "", fmt.Errorf("clickhouse-server 18.16 exited: %v (logs in %s/logs)", err, dir)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, "", fmt.Errorf("clickhouse-server 18.16 not listening on %s after 30 s", addr)
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// repoFile finds path relative to the repository root, walking up from the working directory.
func repoFile(path string) (string, error) {
	dir, _ := os.Getwd()
	for dir != "/" && dir != "." {
		p := filepath.Join(dir, path)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		dir = filepath.Dir(dir)
	}
	return "", fmt.Errorf("%s not found above the working directory", path)
}

type connOption func(*clickhouse.Options)

func withCompression(m clickhouse.CompressionMethod) connOption {
	return func(o *clickhouse.Options) { o.Compression = &clickhouse.Compression{Method: m} }
}

func withAuth(user, password string) connOption {
	return func(o *clickhouse.Options) { o.Auth.Username, o.Auth.Password = user, password }
}

func withDatabase(db string) connOption {
	return func(o *clickhouse.Options) { o.Auth.Database = db }
}

func withPool(n int) connOption {
	return func(o *clickhouse.Options) { o.MaxOpenConns, o.MaxIdleConns = n, n }
}

// open connects clickhouse-go to addr; the connection closes with the test.
func open(t testing.TB, addr string, opts ...connOption) driver.Conn {
	t.Helper()
	o := &clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second, MaxOpenConns: 4}
	if addr != clickhouse18Addr {
		o.Auth = clickhouse.Auth{Username: adminUser, Password: adminPassword} // chserver has no anonymous user
	}
	for _, opt := range opts {
		opt(o)
	}
	conn, err := clickhouse.Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.Ping(context.Background()))
	return conn
}

// newDatabase creates a database unique to the test, dropped when it ends.
func newDatabase(t testing.TB, conn driver.Conn) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_", "#", "_").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	db := "t_" + name + "_" + hex.EncodeToString(b[:])
	require.NoError(t, conn.Exec(context.Background(), "CREATE DATABASE "+db))
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return db
}

// exceptionCode returns the ClickHouse code of an error from clickhouse-go.
func exceptionCode(t testing.TB, err error) int32 {
	t.Helper()
	require.Error(t, err)
	var ex *clickhouse.Exception
	require.ErrorAs(t, err, &ex, "error %v is not a ClickHouse exception", err)
	return ex.Code
}
