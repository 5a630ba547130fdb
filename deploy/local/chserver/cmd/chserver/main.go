// Command chserver is a local ClickHouse server for development and tests: it speaks
// ClickHouse's native TCP protocol and runs every statement on the chDB engine
// (libchdb.so, found through CHDB_LIB_PATH). Never use it as a production store.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigie/vigie/deploy/local/chserver/internal/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chserver:", err)
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func run() error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("chserver", flag.ContinueOnError)
	listen := fs.String("listen", envOr("CHSERVER_LISTEN", cfg.ListenAddr), "native protocol address (env CHSERVER_LISTEN)")
	httpListen := fs.String("http", envOr("CHSERVER_HTTP_LISTEN", cfg.HTTPListenAddr), "HTTP interface address, \"off\" for none (env CHSERVER_HTTP_LISTEN)")
	dataDir := fs.String("data", envOr("CHSERVER_DATA", cfg.DataDir), "chDB data folder (env CHSERVER_DATA)")
	tmpDir := fs.String("tmp", envOr("CHSERVER_TMP", ""), "folder for insert files and spooled results (default DATA/tmp; env CHSERVER_TMP)")
	users := fs.String("users", os.Getenv("CHSERVER_USERS"), "users as name:password:role,... (env CHSERVER_USERS); role admin, writer or analyst")
	usersFile := fs.String("users-file", os.Getenv("CHSERVER_USERS_FILE"), "file of users, one name:password:role per line, mode 0600 (env CHSERVER_USERS_FILE)")
	rolesDir := fs.String("roles", os.Getenv("CHSERVER_ROLES"), "folder of the role files (env CHSERVER_ROLES; default schemas/clickhouse/roles above the working directory)")
	database := fs.String("database", envOr("CHSERVER_DATABASE", "vigie"), "the Vigie database, {db} of the role files (env CHSERVER_DATABASE)")
	origins := fs.String("http-allowed-origins", os.Getenv("CHSERVER_HTTP_ALLOWED_ORIGINS"), "browser origins (scheme://host:port, comma-separated) whose requests the HTTP interface accepts; none by default")
	libPath := fs.String("lib", os.Getenv("CHDB_LIB_PATH"), "path of libchdb.so (env CHDB_LIB_PATH)")
	logLevel := fs.String("log-level", envOr("CHSERVER_LOG_LEVEL", "info"), "debug, info, warn or error")
	shutdown := fs.Duration("shutdown-timeout", cfg.ShutdownTimeout, "how long running queries may finish on SIGTERM")
	maxQueries := fs.Int("max-queries", cfg.MaxQueries, "statements run at once on the engine; reads take at most one less (env CHSERVER_MAX_QUERIES)")
	queueWait := fs.Duration("queue-wait", cfg.QueueWait, "how long a statement waits for a free slot before TOO_MANY_SIMULTANEOUS_QUERIES")
	maxExec := fs.Duration("max-execution-time", cfg.MaxExecutionTime, "default max_execution_time of reads (a client's own setting wins), 0 for none")
	tlsCert := fs.String("tls-cert", os.Getenv("CHSERVER_TLS_CERT"), "PEM certificate (chain): both interfaces speak TLS only, as ClickHouse's secure ports (env CHSERVER_TLS_CERT)")
	tlsKey := fs.String("tls-key", os.Getenv("CHSERVER_TLS_KEY"), "PEM private key of -tls-cert (env CHSERVER_TLS_KEY)")
	ping := fs.String("ping", "", "check that a server answers at this address, exit 0 if so (for scripts)")
	pingUser := fs.String("ping-user", "default", "user for -ping")
	pingPassword := fs.String("ping-password", "", "password for -ping")
	pingPasswordFile := fs.String("ping-password-file", "", "file holding the password for -ping")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *ping != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if *pingPasswordFile != "" {
			b, err := os.ReadFile(*pingPasswordFile)
			if err != nil {
				return fmt.Errorf("ping password: %w", err)
			}
			*pingPassword = strings.TrimSpace(string(b))
		}
		return server.Ping(ctx, *ping, *pingUser, *pingPassword)
	}

	var level zapcore.Level
	if err := level.Set(*logLevel); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logCfg := zap.NewProductionConfig()
	logCfg.Level = zap.NewAtomicLevelAt(level)
	logCfg.Sampling = nil
	log, err := logCfg.Build()
	if err != nil {
		return fmt.Errorf("build logger: %w", err)
	}
	defer func() { _ = log.Sync() }()
	log = log.Named("chserver")

	cfg.ListenAddr, cfg.DataDir, cfg.TmpDir, cfg.ShutdownTimeout = *listen, *dataDir, *tmpDir, *shutdown
	cfg.HTTPListenAddr = *httpListen
	cfg.MaxQueries, cfg.QueueWait, cfg.MaxExecutionTime = *maxQueries, *queueWait, *maxExec
	if v := os.Getenv("CHSERVER_MAX_QUERIES"); v != "" && !flagSet(fs, "max-queries") {
		if cfg.MaxQueries, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("CHSERVER_MAX_QUERIES %q: %w", v, err)
		}
	}
	if cfg.HTTPListenAddr == "off" {
		cfg.HTTPListenAddr = ""
	}
	switch {
	case *users != "" && *usersFile != "":
		return errors.New("users: give -users or -users-file, not both")
	case *users != "":
		cfg.Users, err = server.ParseUsers(*users)
	case *usersFile != "":
		cfg.Users, err = server.ReadUsersFile(*usersFile)
	default:
		return errors.New("users: none given (-users name:password:role,… or -users-file): every user needs a password")
	}
	if err != nil {
		return err
	}
	if *rolesDir == "" {
		if *rolesDir, err = server.FindRolesDir(); err != nil {
			return err
		}
	}
	cfg.Database = *database
	if cfg.Roles, err = server.LoadRoles(*rolesDir, *database); err != nil {
		return err
	}
	for _, o := range strings.Split(*origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	tlsCfg, err := serverTLS(*tlsCert, *tlsKey)
	if err != nil {
		return err
	}
	ln, err := listenOn(cfg.ListenAddr, tlsCfg)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer func() { _ = ln.Close() }()
	var httpLn net.Listener
	if cfg.HTTPListenAddr != "" {
		if httpLn, err = listenOn(cfg.HTTPListenAddr, tlsCfg); err != nil {
			return fmt.Errorf("listen http: %w", err)
		}
		defer func() { _ = httpLn.Close() }()
	}
	engine, err := server.OpenEngine(*libPath, cfg, cfg.MaxQueries)
	if err != nil {
		return fmt.Errorf("open chdb: %w", err)
	}
	defer engine.Close()
	srv, err := server.New(cfg, engine, log)
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	if httpLn != nil {
		go func() { httpDone <- srv.ServeHTTPClients(ctx, httpLn) }()
		log.Info("listening http", zap.String("addr", httpLn.Addr().String()))
	} else {
		httpDone <- nil
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("data_dir", cfg.DataDir),
		zap.String("engine_version", srv.Version()))
	err = srv.Serve(ctx, ln)
	stop() // the HTTP interface stops with the native one, whatever ended it
	err = errors.Join(err, <-httpDone)
	log.Info("stopped")
	return err
}
