// Package service is the one way a Vigie service starts, runs and stops. A service's main is
//
//	package main
//
//	import (
//		"github.com/vigie/vigie/pkg/service"
//		"github.com/vigie/vigie/services/writer/internal/app"
//	)
//
//	func main() { service.Main("writer", app.DefaultConfig(), app.Build) }
//
// and its configuration embeds Base inline, so every service has the same admin, log and
// shutdown keys:
//
//	type Config struct {
//		service.Base `yaml:",inline"`
//		Kafka      kafka.Config      `yaml:"kafka"`
//		ClickHouse clickhouse.Config `yaml:"clickhouse"`
//	}
//
//	func DefaultConfig() *Config {
//		return &Config{Base: service.DefaultBase("127.0.0.1:19103"), Kafka: kafka.DefaultConfig(), ClickHouse: clickhouse.DefaultConfig()}
//	}
//
//	func (c *Config) Validate() error {
//		return errors.Join(c.Base.Validate(), c.Kafka.Validate("kafka"), c.ClickHouse.Validate("clickhouse"))
//	}
//
// Build wires the service's parts and returns; it runs nothing itself:
//
//	func Build(ctx context.Context, s *service.Service, cfg *Config) error {
//		conn, err := clickhouse.Open(ctx, cfg.ClickHouse, s.Logger)
//		if err != nil {
//			return err
//		}
//		s.OnClose(conn.Close)
//		s.AddCheck("clickhouse", clickhouse.Ping(conn))
//		c, err := kafka.NewConsumer(cfg.Kafka, cfg.Consumer, cfg.Topics.Enriched, handle, kafka.Hooks{}, s.Logger, s.Registry)
//		if err != nil {
//			return err
//		}
//		s.AddCheck("kafka", c.Ready)
//		s.Add("consumer", c.Run, c.Stop)
//		s.OnReload("credentials", creds.Reload)
//		return nil
//	}
//
// Main loads the configuration (defaults, then the YAML file named by -config or
// VIGIE_<NAME>_CONFIG, then VIGIE_<NAME>_* variables, then flags; see package config), builds
// the logger and the registry, calls build, serves the admin port, runs the parts until
// SIGINT or SIGTERM, drains them in order within shutdown_timeout, and exits once:
//
//   - 0 after a clean shutdown, after -h, and after -version (or a sole `version` argument),
//     which prints "<name> <version> (revision <rev>, <go version>)";
//   - 2 when the configuration is wrong (unknown key, bad value, Validate): the message reads
//     "<name>: config: <key>: <what is wrong>";
//   - 1 on any other error: build failed (an unreadable password file, a rule file that does
//     not parse) or a part failed.
//
// SIGHUP runs the OnReload hooks in the order they were added; an error is logged and the
// service keeps what it had (CONVENTIONS 15). SIGHUP never ends the process.
//
// The admin port (admin.listen) serves:
//
//	/metrics        the registry, with the client library's handler (and its own request metrics)
//	/healthz        200 while the process runs
//	/readyz         200 "ready" once build returned and every part started, until shutdown
//	                begins, and while every named check passes; else 503. The body lists
//	                each check as "name: ok" or "name: error: ..."; each check has 2 s.
//	                The same evaluation also runs every 5 s by itself and sets the gauges
//	                vigie_ready (1 or 0) and vigie_check_ok{check="<name>"} (1 or 0), so
//	                Prometheus sees readiness without anything polling /readyz; a shutdown
//	                sets vigie_ready 0 at once.
//	/debug/pprof/   the runtime profiles
//
// The registry (Service.Registry) holds the Go and process collectors,
// vigie_build_info{version,revision,go_version} 1, vigie_ready and vigie_check_ok{check};
// Service.Registerer prefixes the service's
// own metrics with vigie_<name>_. Shared packages (the Kafka consumer) register unprefixed
// vigie_kafka_* metrics on Service.Registry.
//
// Tests run a whole service in-process with Run, which is Main without flags, environment and
// exit; admin.listen 127.0.0.1:0 picks a free port (Service.AdminAddr).
package service
