package e2e

// The fault suite's own infrastructure: a ClickHouse server it may stop (clickhouse.sh with
// CHSERVER_INSTANCE), a three-broker cluster whose nodes it may kill (kafka.sh cluster with
// KAFKA_INSTANCE), never the shared ones other tests use; and the peak memory of a process.

import (
	"bufio"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/clickhouse"
	"github.com/vigie/vigie/pkg/testenv"
)

// instanceName is a name for a server of this test process alone ([a-z0-9-]).
func instanceName(prefix string) string {
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s-%d-%x", prefix, os.Getpid(), rnd)
}

// ownClickHouse is a local ClickHouse server (chserver) of one test, on free ports, with a
// data directory of its own.
type ownClickHouse struct {
	env  []string
	addr string
	dir  string
	log  string
}

// startOwnClickHouse starts a ClickHouse server for this test alone, with extra environment
// for clickhouse.sh and the server (CHSERVER_MAX_QUERIES); cleanup stops it and removes its
// data.
func startOwnClickHouse(t *testing.T, env ...string) *ownClickHouse {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	instance := instanceName("fs")
	c := &ownClickHouse{addr: "127.0.0.1:" + strconv.Itoa(freePorts(t, 0)), dir: filepath.Join(root, ".state", "clickhouse-"+instance), log: filepath.Join(root, ".state", "logs", "chserver-"+instance+".log")}
	c.env = append([]string{"CHSERVER_INSTANCE=" + instance, "CHSERVER_LISTEN=" + c.addr, "CHSERVER_HTTP_LISTEN=127.0.0.1:" + strconv.Itoa(freePorts(t, 0))}, env...)
	t.Cleanup(func() {
		if err := c.sh("stop"); err != nil {
			t.Errorf("stop the test's ClickHouse server: %v", err)
		}
		if t.Failed() {
			t.Logf("ClickHouse server log kept in %s", c.log)
		} else {
			_ = os.Remove(c.log)
		}
		_ = os.RemoveAll(c.dir)
		_ = os.Remove(filepath.Join(root, ".state", "pids", "chserver-"+instance+".pid.lock"))
	})
	require.NoError(t, c.sh("start"))
	return c
}

// config is the configuration that reaches the server as its administrator, with the
// password clickhouse.sh generated in .state/secrets (the shared server's), or as the
// environment's user when it made none (a server without users).
func (c *ownClickHouse) config(t *testing.T) clickhouse.Config {
	t.Helper()
	cc := clickhouse.DefaultConfig()
	cc.Addrs = []string{c.addr}
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	if f := filepath.Join(root, ".state", "secrets", "clickhouse-admin.password"); fileExists(f) {
		cc.Username, cc.Password, cc.PasswordFile = "admin", "", f
	}
	return cc
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// stop stops the server (SIGTERM: running queries may finish) and waits until it is gone.
func (c *ownClickHouse) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, c.sh("stop"))
}

// start starts it again on the same data and waits until it answers.
func (c *ownClickHouse) start(t *testing.T) {
	t.Helper()
	require.NoError(t, c.sh("start"))
}

func (c *ownClickHouse) sh(cmd string) error { return localSh("clickhouse.sh", c.env, cmd) }

// ownCluster is a three-broker KRaft cluster of one test (replication factor 3,
// min.insync.replicas 2), on free ports, in a state directory of its own.
type ownCluster struct {
	env     []string
	brokers []string
	dir     string
}

// startOwnCluster starts a cluster for this test alone; cleanup stops it and removes its data.
func startOwnCluster(t *testing.T) *ownCluster {
	t.Helper()
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	instance := instanceName("fs")
	base := freeClusterPorts(t)
	c := &ownCluster{
		env: []string{"KAFKA_INSTANCE=" + instance, "KAFKA_CLUSTER_PORT=" + strconv.Itoa(base)},
		dir: filepath.Join(root, ".state", "kafka-cluster-"+instance),
	}
	for n := range 3 {
		c.brokers = append(c.brokers, "127.0.0.1:"+strconv.Itoa(base+100*n))
	}
	t.Cleanup(func() {
		if err := kafkaSh(c.env, "stop", "cluster"); err != nil {
			t.Errorf("stop the test's cluster: %v", err)
		}
		_ = os.RemoveAll(c.dir)
		_ = os.Remove(c.dir + ".lock")
	})
	require.NoError(t, kafkaSh(c.env, "start", "cluster"))
	return c
}

// killNode SIGKILLs node n (1 to 3), as a crash would.
func (c *ownCluster) killNode(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, kafkaSh(c.env, "kill-node", strconv.Itoa(n)))
}

// stopNode stops node n gracefully.
func (c *ownCluster) stopNode(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, kafkaSh(c.env, "stop-node", strconv.Itoa(n)))
}

// startNode starts node n again and waits until it is up (idempotent).
func (c *ownCluster) startNode(t *testing.T, n int) {
	t.Helper()
	require.NoError(t, kafkaSh(c.env, "start-node", strconv.Itoa(n)))
}

// freeClusterPorts returns a port p such that p, p+100 and p+200 and the next port of each
// (the controllers') are free now.
func freeClusterPorts(t *testing.T) int {
	t.Helper()
	return freePorts(t, 0, 1, 100, 101, 200, 201)
}

// freePorts returns a port p such that p plus each offset is a free port now, below the
// range the kernel gives outgoing connections: a server that stops and starts again on its
// ports (a broker, ClickHouse) would otherwise find one taken by some connection's local
// port meanwhile.
func freePorts(t *testing.T, offsets ...int) int {
	t.Helper()
	top := slices.Max(offsets)
	lo, hi := 10000, ephemeralLow()-top-1
	require.Greater(t, hi, lo+1000, "the ephemeral port range leaves no room below it")
	for range 200 {
		p := lo + mrand.IntN(hi-lo)
		free := true
		for _, o := range offsets {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+o))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return p
		}
	}
	t.Fatalf("no free ports at offsets %v", offsets)
	return 0
}

// ephemeralLow is the first port of the kernel's range for outgoing connections.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768 // Linux's default
}

// memoryKB returns the VmHWM (peak resident set) and VmRSS of a process, in kB, from
// /proc/<pid>/status; zeros when it is gone.
func memoryKB(pid int) (hwm, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}
