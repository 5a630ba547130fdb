package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// proc is one service running as a real process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	admin   string
	done    chan error
	// stopOnce: the test stops the services itself, then cleanup would again.
	stopOnce sync.Once
}

// buildServices builds the service binaries (without -race: the services are under test,
// not the test binary) into dir, each in its own module as `make build` does.
func buildServices(t *testing.T, root, dir string) {
	t.Helper()
	for _, b := range []struct{ module, pkg string }{
		{"services/ingest", "./cmd/ingest"},
		{"services/enricher", "./cmd/enricher"},
		{"services/writer", "./cmd/writer"},
		{"services/vigiectl", "./cmd/vigiectl"},
		{"services/correlator", "./cmd/correlator"},
	} {
		cmd := exec.Command("go", "build", "-o", dir+"/", b.pkg)
		cmd.Dir = filepath.Join(root, b.module)
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "build %s %s: %s", b.module, b.pkg, out)
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// start runs bin with env, logging to dir/name.log, and waits until admin answers /readyz.
func start(t *testing.T, dir, name, bin, admin string, env ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	require.NoError(t, cmd.Start())
	p := &proc{name: name, cmd: cmd, logPath: logPath, admin: admin, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			kept := filepath.Join(os.TempDir(), "vigie-e2e-"+name+".log")
			_ = os.WriteFile(kept, log, 0o600)
			t.Logf("last lines of %s's log (whole log kept in %s):\n%s", name, kept, tail(string(log), 4000))
		}
	})
	ready := func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			return false
		default:
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, func() bool {
		if ready() {
			return true
		}
		select {
		case err := <-p.done:
			p.done <- err
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited while starting (%v):\n%s", name, err, tail(string(log), 3000))
		default:
		}
		return false
	}, 90*time.Second, 200*time.Millisecond, "%s not ready at %s", name, admin)
	return p
}

// stop sends SIGTERM and waits for a clean exit (SIGKILL after 40 s).
func (p *proc) stop(t *testing.T) {
	p.stopOnce.Do(func() { p.doStop(t) })
}

func (p *proc) doStop(t *testing.T) {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", p.name, err)
		}
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("%s: still running 40 s after SIGTERM, killed", p.name)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var execCommand = exec.Command
