package validate

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func composeDir(t *testing.T) string { return path(t, "deploy", "compose") }

// loadCompose loads a compose file with compose-go as `docker compose` would (schema
// validation, interpolation with the defaults it gives, normalisation, consistency checks),
// the demo profile included.
func loadCompose(t *testing.T, data []byte) (*types.Project, error) {
	t.Helper()
	dir := composeDir(t)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: data}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) {
		o.SetProjectName("vigie", true)
		o.Profiles = []string{"demo"}
		o.ResolvePaths = true
	})
}

func readCompose(t *testing.T) []byte {
	data, err := os.ReadFile(filepath.Join(composeDir(t), "compose.yaml"))
	require.NoError(t, err)
	return data
}

var (
	secretName = regexp.MustCompile(`(?i)(password|secret|token|_key|credentials)$`)
	chImageTag = regexp.MustCompile(`^clickhouse/clickhouse-(server|keeper):(\d+)\.(\d+)`)
)

// checkCompose returns what is wrong with a loaded project against the stack's rules.
func checkCompose(t *testing.T, p *types.Project) []string {
	t.Helper()
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	d, err := parseDockerfile(readDockerfile(t))
	require.NoError(t, err)

	// Host ports: none published twice.
	published := map[string]string{}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, port := range s.Ports {
			if port.Published == "" {
				continue
			}
			key := fmt.Sprintf("%s:%s/%s", port.HostIP, port.Published, port.Protocol)
			if other, ok := published[key]; ok {
				bad("host port %s published by %s and %s", key, other, name)
			}
			published[key] = name
			if port.HostIP == "" {
				published["0.0.0.0:"+port.Published+"/"+port.Protocol] = name
			}
		}
	}
	// Two publications on the wildcard and a specific address of one port clash too.
	seen := map[string]string{}
	for key, name := range published {
		_, rest, _ := strings.Cut(key, ":")
		if other, ok := seen[rest]; ok && other != name {
			bad("host port %s published by %s and %s", rest, other, name)
		}
		seen[rest] = name
	}

	// Dependencies: on a health check that exists, on a one-shot job that ends.
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for dep, c := range s.DependsOn {
			ds, ok := p.Services[dep]
			if !ok {
				bad("%s depends on %s, which does not exist", name, dep)
				continue
			}
			switch c.Condition {
			case types.ServiceConditionHealthy:
				if ds.HealthCheck == nil || ds.HealthCheck.Disable || len(ds.HealthCheck.Test) == 0 {
					bad("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if ds.Restart != "no" && ds.Restart != "" {
					bad("%s waits for %s to complete, which restarts (%s)", name, dep, ds.Restart)
				}
			default:
				bad("%s depends on %s with condition %q: wait for healthy or completed", name, dep, c.Condition)
			}
		}
		if s.Restart != "no" && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			bad("%s: a long-running service without a health check", name)
		}
	}

	// Volumes: named volumes declared, bind sources present.
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					bad("%s: volume %s not declared", name, v.Source)
				}
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					bad("%s: bind mount %s: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					bad("%s: bind mount %s must be read-only", name, v.Source)
				}
			}
		}
	}

	// Secrets: files under secrets/ (git-ignored), referenced ones declared, nothing secret in
	// an environment variable.
	for n, s := range p.Secrets {
		if s.File == "" || s.Environment != "" || s.Content != "" {
			bad("secret %s: must be a file", n)
		}
		if rel, err := filepath.Rel(filepath.Join(composeDir(t), "secrets"), s.File); err != nil || strings.HasPrefix(rel, "..") {
			bad("secret %s: file %s outside deploy/compose/secrets", n, s.File)
		}
	}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, ref := range s.Secrets {
			if _, ok := p.Secrets[ref.Source]; !ok {
				bad("%s: secret %s not declared", name, ref.Source)
			}
		}
		for k, v := range s.Environment {
			if secretName.MatchString(k) {
				bad("%s: %s in the environment: pass a _FILE naming a secret", name, k)
			}
			if strings.HasSuffix(k, "_FILE") && v != nil && strings.HasPrefix(*v, "/run/secrets/") {
				target := strings.TrimPrefix(*v, "/run/secrets/")
				found := false
				for _, ref := range s.Secrets {
					if ref.Target == *v || ref.Target == target || (ref.Target == "" && ref.Source == target) {
						found = true
					}
				}
				if !found {
					bad("%s: %s=%s names no secret of the service", name, k, *v)
				}
			}
		}
	}

	// Vigie's containers: built from a Dockerfile target, non-root, read-only, no capability,
	// configured only with keys the binary knows, ready on its admin port.
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if s.Build == nil {
			continue
		}
		if _, ok := d.byName[s.Build.Target]; !ok {
			bad("%s: build target %q is not a Dockerfile stage", name, s.Build.Target)
			continue
		}
		if uid, _, _ := strings.Cut(s.User, ":"); uid == "" || uid == "0" || uid == "root" {
			bad("%s: user %q must be non-root", name, s.User)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			bad("%s: read_only, cap_drop ALL and no-new-privileges", name)
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 {
			bad("%s: no memory limit", name)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		problems = append(problems, checkKeys("compose "+name, commandKeys(t, s.Build.Target, s.Command), env, s.Command)...)
		if slices.Contains(serverTargets, s.Build.Target) {
			listen := env["VIGIE_"+strings.ToUpper(s.Build.Target)+"_ADMIN_LISTEN"]
			_, port, _ := strings.Cut(listen, ":")
			hc := s.HealthCheck
			if port == "" || hc == nil || len(hc.Test) != 3 || hc.Test[1] != "/usr/local/bin/healthcheck" || hc.Test[2] != "http://127.0.0.1:"+port+"/readyz" {
				bad("%s: health check must be /usr/local/bin/healthcheck on /readyz of the admin port (%q)", name, listen)
			}
			usesKafka := env["VIGIE_"+strings.ToUpper(s.Build.Target)+"_KAFKA_BROKERS"] != ""
			usesCH := env["VIGIE_"+strings.ToUpper(s.Build.Target)+"_CLICKHOUSE_ADDRS"] != ""
			if usesKafka && s.DependsOn["topics"].Condition != types.ServiceConditionCompletedSuccessfully {
				bad("%s uses Kafka but does not wait for the topics job", name)
			}
			if usesCH && s.DependsOn["migrate"].Condition != types.ServiceConditionCompletedSuccessfully {
				bad("%s uses ClickHouse but does not wait for the migrate job", name)
			}
		}
	}
	return problems
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(t, readCompose(t))
	require.NoError(t, err)
	require.Empty(t, checkCompose(t, p))

	for _, want := range []string{"kafka-1", "kafka-2", "kafka-3", "keeper-1", "keeper-2", "keeper-3",
		"ch-s1-r1", "ch-s1-r2", "ch-s2-r1", "ch-s2-r2", "topics", "migrate",
		"ingest", "enricher", "writer", "correlator", "simulator", "prometheus", "grafana"} {
		require.Contains(t, p.Services, want)
	}

	// The one-shot jobs.
	require.Equal(t, types.ShellCommand{"topics", "apply", "-strict"}, p.Services["topics"].Command)
	require.Equal(t, "migrate", p.Services["migrate"].Command[0])

	// Kafka: three KRaft nodes, each broker and controller, one quorum, replication 3.
	var ids []string
	for _, n := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		s := p.Services[n]
		require.True(t, strings.HasPrefix(s.Image, "apache/kafka:"), n)
		env := s.Environment
		ids = append(ids, *env["KAFKA_NODE_ID"])
		require.Equal(t, "broker,controller", *env["KAFKA_PROCESS_ROLES"])
		require.Equal(t, "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093", *env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
		require.Equal(t, "PLAINTEXT://"+n+":9092", *env["KAFKA_ADVERTISED_LISTENERS"])
		require.Equal(t, "3", *env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
		require.Equal(t, "2", *env["KAFKA_MIN_INSYNC_REPLICAS"])
		require.Equal(t, "false", *env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"])
		require.Len(t, s.Volumes, 1)
		require.Equal(t, *env["KAFKA_LOG_DIRS"], s.Volumes[0].Target)
	}
	require.Equal(t, []string{"1", "2", "3"}, ids)

	checkClickHouseTopology(t, p)
	checkGrafana(t, p)

	// Prometheus: the scrape config and the rules mounted; its jobs name compose services.
	prom := p.Services["prometheus"]
	targets := map[string]string{}
	for _, v := range prom.Volumes {
		targets[v.Target] = v.Source
	}
	require.Equal(t, path(t, "deploy", "prometheus", "prometheus.yml"), targets["/etc/prometheus/prometheus.yml"])
	require.Equal(t, path(t, "deploy", "prometheus", "rules"), targets["/etc/prometheus/rules"])
	for _, sc := range loadPromConfig(t).ScrapeConfigs {
		for _, sd := range sc.DNSSDConfigs {
			for _, n := range sd.Names {
				require.Contains(t, p.Services, n, "prometheus job %s scrapes %s", sc.JobName, n)
			}
		}
	}

	// The secrets' files are git-ignored.
	gi, err := os.ReadFile(filepath.Join(composeDir(t), ".gitignore"))
	require.NoError(t, err)
	require.Contains(t, string(gi), "/secrets/*")
}

func TestComposeChecksCatchMistakes(t *testing.T) {
	data := string(readCompose(t))
	for name, mutate := range map[string]func(string) string{
		"port clash": func(s string) string { return strings.Replace(s, `"3000:3000"`, `"8080:3000"`, 1) },
		"secret inline": func(s string) string {
			return strings.Replace(s, "VIGIE_INGEST_LISTEN: 0.0.0.0:8080", "VIGIE_INGEST_LISTEN: 0.0.0.0:8080\n      VIGIE_INGEST_KAFKA_SASL_PASSWORD: hunter2", 1)
		},
		"root user": func(s string) string {
			return strings.Replace(s, `user: "${VIGIE_UID:-65532}:${VIGIE_GID:-65532}"`, `user: "0:0"`, 1)
		},
		"no wait on jobs": func(s string) string {
			return strings.Replace(s, "migrate: {condition: service_completed_successfully}", "migrate: {condition: service_started}", 1)
		},
		"unknown key": func(s string) string {
			return strings.Replace(s, "VIGIE_WRITER_MEMORY_LIMIT_MB", "VIGIE_WRITER_MEMORY_LIMIT", 1)
		},
		"missing secret": func(s string) string {
			return strings.Replace(s, "secrets: [ingest_credentials, pseudonym_keys]", "secrets: [ingest_credentials]", 1)
		},
		"typo": func(s string) string { return strings.Replace(s, "cap_drop: [ALL]", "cap_drops: [ALL]", 1) },
		"healthless": func(s string) string {
			return strings.Replace(s, "      start_period: 60s\n", "      start_period: 60s\n      disable: true\n", 1)
		},
		"healthless dep": func(s string) string {
			return strings.Replace(s, `test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9182/ready"]`, `disable: true`, 1)
		},
		"bind writable": func(s string) string {
			return strings.Replace(s, "../prometheus/rules:/etc/prometheus/rules:ro", "../prometheus/rules:/etc/prometheus/rules", 1)
		},
	} {
		m := mutate(data)
		require.NotEqual(t, data, m, name)
		p, err := loadCompose(t, []byte(m))
		if err != nil {
			continue // compose-go itself refuses it
		}
		require.NotEmpty(t, checkCompose(t, p), "a compose file with %s passed", name)
	}
}

// The ClickHouse side: servers >= 25.8 as 2 shards x 2 replicas in cluster.xml, Keeper quorum of
// three in keeper.xml, each server's macros from its environment, no password in the files.
type chConfig struct {
	IncludeFrom   string `xml:"include_from"`
	RemoteServers struct {
		Vigie struct {
			Secret struct {
				Incl string `xml:"incl,attr"`
			} `xml:"secret"`
			Shards []struct {
				InternalReplication bool `xml:"internal_replication"`
				Replicas            []struct {
					Host string `xml:"host"`
					Port int    `xml:"port"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:"vigie"`
	} `xml:"remote_servers"`
	ZooKeeper struct {
		Nodes []struct {
			Host string `xml:"host"`
			Port int    `xml:"port"`
		} `xml:"node"`
	} `xml:"zookeeper"`
	Macros struct {
		Shard struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"shard"`
		Replica struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"replica"`
	} `xml:"macros"`
	Keeper struct {
		TCPPort  int `xml:"tcp_port"`
		ServerID struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"server_id"`
		Raft struct {
			Servers []struct {
				ID       int    `xml:"id"`
				Hostname string `xml:"hostname"`
				Port     int    `xml:"port"`
			} `xml:"server"`
		} `xml:"raft_configuration"`
	} `xml:"keeper_server"`
}

func readXML(t *testing.T, name string, v any) []byte {
	data, err := os.ReadFile(filepath.Join(composeDir(t), "clickhouse", name))
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(data, v), name)
	return data
}

func checkClickHouseTopology(t *testing.T, p *types.Project) {
	var cluster, keeper chConfig
	readXML(t, "cluster.xml", &cluster)
	readXML(t, "keeper.xml", &keeper)
	users := string(readXML(t, "users.xml", &struct{}{}))

	shards := cluster.RemoteServers.Vigie.Shards
	require.Len(t, shards, 2, "2 shards")
	require.NotEmpty(t, cluster.RemoteServers.Vigie.Secret.Incl, "inter-server secret substituted, not written")
	for i, sh := range shards {
		require.True(t, sh.InternalReplication)
		require.Len(t, sh.Replicas, 2, "2 replicas per shard")
		for _, r := range sh.Replicas {
			s, ok := p.Services[r.Host]
			require.True(t, ok, "cluster host %s is a compose service", r.Host)
			m := chImageTag.FindStringSubmatch(s.Image)
			require.NotNil(t, m, "%s: image %s", r.Host, s.Image)
			major, _ := strconv.Atoi(m[2])
			minor, _ := strconv.Atoi(m[3])
			require.True(t, major > 25 || major == 25 && minor >= 8, "%s: ClickHouse 25.8 or newer (%s)", r.Host, s.Image)
			require.Equal(t, strconv.Itoa(i+1), *s.Environment[cluster.Macros.Shard.FromEnv], "%s: shard macro", r.Host)
			require.Equal(t, r.Host, *s.Environment[cluster.Macros.Replica.FromEnv], "%s: replica macro", r.Host)
			var mounts []string
			for _, v := range s.Volumes {
				mounts = append(mounts, v.Target)
			}
			require.Contains(t, mounts, "/etc/clickhouse-server/config.d/vigie.xml")
			require.Contains(t, mounts, "/etc/clickhouse-server/users.d/vigie.xml")
			require.Len(t, s.Secrets, 1)
			require.Equal(t, cluster.IncludeFrom, s.Secrets[0].Target, "%s: the include file is the secret", r.Host)
		}
	}
	require.Len(t, cluster.ZooKeeper.Nodes, 3)
	require.Len(t, keeper.Keeper.Raft.Servers, 3)
	for i, n := range cluster.ZooKeeper.Nodes {
		require.Equal(t, keeper.Keeper.TCPPort, n.Port)
		r := keeper.Keeper.Raft.Servers[i]
		require.Equal(t, n.Host, r.Hostname)
		s, ok := p.Services[n.Host]
		require.True(t, ok, "keeper %s is a compose service", n.Host)
		require.True(t, strings.HasPrefix(s.Image, "clickhouse/clickhouse-keeper:"), s.Image)
		require.Equal(t, strconv.Itoa(r.ID), *s.Environment[keeper.Keeper.ServerID.FromEnv])
	}
	// Users: every password is a substitution; the default user is gone.
	require.Contains(t, users, `<default remove="remove"/>`)
	require.NotRegexp(t, `<password(_sha256_hex)?>[^<]`, users, "a password written in users.xml")
	require.Equal(t, 4, strings.Count(users, `<password_sha256_hex incl=`))
}

func checkGrafana(t *testing.T, p *types.Project) {
	g := p.Services["grafana"]
	require.Contains(t, *g.Environment["GF_PLUGINS_PREINSTALL_SYNC"], "grafana-clickhouse-datasource@")
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		mounts[v.Target] = v.Source
	}
	require.Equal(t, path(t, "deploy", "grafana", "provisioning"), mounts["/etc/grafana/provisioning"])
	// The dashboards go where the provider looks for them.
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	data, err := os.ReadFile(path(t, "deploy", "grafana", "provisioning", "dashboards", "vigie.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &provider))
	require.Equal(t, path(t, "deploy", "grafana", "dashboards"), mounts[provider.Providers[0].Options.Path])
	// Every ${VAR} the data sources read is given (the password from its secret file at start).
	ds, err := os.ReadFile(path(t, "deploy", "grafana", "provisioning", "datasources", "vigie.yaml"))
	require.NoError(t, err)
	var lines []string
	for _, l := range strings.Split(string(ds), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+)\}`).FindAllStringSubmatch(strings.Join(lines, "\n"), -1) {
		if m[1] == "VIGIE_CLICKHOUSE_PASSWORD" {
			require.Contains(t, strings.Join(g.Entrypoint, " "), "VIGIE_CLICKHOUSE_PASSWORD=$(cat /run/secrets/clickhouse_grafana_password)")
			continue
		}
		require.Contains(t, g.Environment, m[1], "grafana: %s not set", m[1])
	}
}
