// Package conformance drives the local ClickHouse server with clickhouse-go, the client
// Vigie's services use, exactly as they would use a real server. The protocol-level part of
// the suite also runs against Debian's clickhouse-server 18.16 (a real ClickHouse server),
// which TestMain starts on a free port with deploy/local/clickhouse18.sh.
package conformance

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/vigie/vigie/deploy/local/chserver/internal/chdb"
	"github.com/vigie/vigie/deploy/local/chserver/internal/server"
)

// chserverAddr is the address of the server this test binary starts on the chDB engine,
// chserverHTTPAddr that of its HTTP interface; testEngine is that engine, which the
// benchmarks also use directly.
var (
	chserverAddr     string
	chserverHTTPAddr string
	testEngine       *chdb.Engine
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chserver-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	stop, addr, httpAddr, err := startServer(filepath.Join(dir, "chdb"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start chserver:", err)
		return 1
	}
	defer stop()
	chserverAddr, chserverHTTPAddr = addr, httpAddr
	stop18, addr18, err := start18(filepath.Join(dir, "clickhouse18"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start clickhouse-server 18.16:", err)
		return 1
	}
	defer stop18()
	clickhouse18Addr = addr18
	return m.Run()
}

// The suite's users, one per role, and the database the roles name ({db} of
// schemas/clickhouse/roles). "vigie" (admin) is the user of the authentication tests.
const (
	adminUser, adminPassword     = "admin", "admin-s3cret"
	writerUser, writerPassword   = "writer", "writer-s3cret"
	analystUser, analystPassword = "analyst", "analyst-s3cret"
	suiteDatabase                = "vigie"
)

// suiteConfig is the configuration of the suite's server, for the tests that start another
// server on its engine.
var suiteConfig server.Config

func startServer(dataDir string) (stop func(), addr, httpAddr string, err error) {
	rolesDir, err := repoFile(server.RolesDir)
	if err != nil {
		return nil, "", "", err
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Users = map[string]server.User{
		adminUser: {Password: adminPassword, Role: "admin"}, "vigie": {Password: "s3cret", Role: "admin"},
		writerUser: {Password: writerPassword, Role: "writer"}, analystUser: {Password: analystPassword, Role: "analyst"},
	}
	if cfg.Roles, err = server.LoadRoles(rolesDir, suiteDatabase); err != nil {
		return nil, "", "", err
	}
	cfg.Database = suiteDatabase
	cfg.SpoolMemory = 4 << 20 // small, so that big results go through the spool file
	suiteConfig = cfg
	engine, err := server.OpenEngine("", cfg, cfg.MaxQueries)
	if err != nil {
		return nil, "", "", err
	}
	testEngine = engine
	log := zap.NewNop()
	if os.Getenv("CHSERVER_TEST_LOG") != "" {
		log, _ = zap.NewDevelopment()
	}
	srv, err := server.New(cfg, engine, log)
	if err != nil {
		engine.Close()
		return nil, "", "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		engine.Close()
		return nil, "", "", err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = ln.Close()
		engine.Close()
		return nil, "", "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = srv.Serve(ctx, ln); done <- struct{}{} }()
	go func() { _ = srv.ServeHTTPClients(ctx, httpLn); done <- struct{}{} }()
	return func() {
		cancel()
		<-done
		<-done
		engine.Close()
	}, ln.Addr().String(), httpLn.Addr().String(), nil
}
