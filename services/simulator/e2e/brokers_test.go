package e2e

// A broker a fault test may restart: a single broker of the test's own (kafka.sh with
// KAFKA_INSTANCE), never the shared one other tests use.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
)

// kafkaSh runs deploy/local/kafka.sh with args and extra environment.
func kafkaSh(env []string, args ...string) error { return localSh("kafka.sh", env, args...) }

// localSh runs the script of deploy/local with args and extra environment.
func localSh(script string, env []string, args ...string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(root, "deploy/local", script), args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", script, strings.Join(args, " "), err, out)
	}
	return nil
}

// ownBroker is a single broker of one test, on free ports, in a state directory of its own.
type ownBroker struct {
	env     []string
	brokers []string
	dir     string
}

// startOwnBroker starts a broker for this test alone; cleanup stops it and removes its data.
func startOwnBroker(t *testing.T) *ownBroker {
	t.Helper()
	return startOwnBrokerEnv(t)
}

// startOwnBrokerEnv is startOwnBroker with kafka.sh settings (KAFKA_SECURE=1).
func startOwnBrokerEnv(t *testing.T, env ...string) *ownBroker {
	t.Helper()
	port := freePortPair(t)
	instance := instanceName("e2e")
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	b := &ownBroker{
		env:     append([]string{"KAFKA_INSTANCE=" + instance, "KAFKA_PORT=" + strconv.Itoa(port)}, env...),
		brokers: []string{"127.0.0.1:" + strconv.Itoa(port)},
		dir:     filepath.Join(root, ".state", "kafka-single-"+instance),
	}
	t.Cleanup(func() {
		if err := kafkaSh(b.env, "stop", "single"); err != nil {
			t.Errorf("stop the test's broker: %v", err)
		}
		_ = os.RemoveAll(b.dir)
		_ = os.Remove(b.dir + ".lock")
	})
	require.NoError(t, kafkaSh(b.env, "start", "single"))
	return b
}

// freePortPair returns a port p such that p and p+1 (the controller's) are free now.
func freePortPair(t *testing.T) int {
	t.Helper()
	return freePorts(t, 0, 1)
}
