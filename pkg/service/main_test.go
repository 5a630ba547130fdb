package service_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/service"
)

// childEnv makes the test binary run childMain instead of the tests: a real process built
// from a five-line main, for what only a process shows (signals, exit codes).
const childEnv = "VIGIE_SERVICE_TEST_CHILD"

func childMain() {
	var reloads atomic.Int32
	service.Main("testsvc", newConfig(), func(_ context.Context, s *service.Service, cfg *testConfig) error {
		if cfg.Fail == "build" {
			return errors.New("open rules: rules/x.yaml: no such file")
		}
		s.OnReload("count", func(context.Context) error {
			fmt.Printf("reloaded %d\n", reloads.Add(1))
			return nil
		})
		stopped := make(chan struct{})
		s.Add("part", func(context.Context) error {
			fmt.Println("running")
			<-stopped
			fmt.Println("drained")
			return nil
		}, func(context.Context) error {
			close(stopped)
			return nil
		})
		return nil
	})
}

// child runs the test binary as the test service with args.
func child(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1", "VIGIE_TESTSVC_LOG_LEVEL=warn")
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.ExitCode()
}

func TestSIGHUPReloadsAndNeverEndsTheProcess(t *testing.T) {
	cmd := child(t, "-admin.listen=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "process ended, waiting for %q; stderr: %s", want, stderr.String())
			require.Equal(t, want, l)
		case <-time.After(30 * time.Second):
			t.Fatalf("no %q within 30s; stderr: %s", want, stderr.String())
		}
	}
	expect("running")
	for i := 1; i <= 3; i++ {
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
		expect(fmt.Sprintf("reloaded %d", i))
	}
	require.NoError(t, cmd.Process.Signal(syscall.Signal(0)), "still running after SIGHUP")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	expect("drained")
	for range lines {
	}
	require.NoError(t, cmd.Wait(), "SIGTERM drains and exits 0; stderr: %s", stderr.String())
}

var versionLine = regexp.MustCompile(`^testsvc \S+ \(revision \S+, go1\.[^)]+\)\n$`)

func TestMainExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStdout *regexp.Regexp
		wantStderr string
	}{
		{name: "-version", args: []string{"-version"}, wantStdout: versionLine},
		{name: "--version with other flags", args: []string{"-admin.listen=bad", "--version"}, wantStdout: versionLine},
		{name: "version as sole argument", args: []string{"version"}, wantStdout: versionLine},
		{name: "-h", args: []string{"-h"}, wantStderr: "-admin.listen"},
		{name: "validation", args: []string{"-admin.listen="}, wantCode: 2, wantStderr: "testsvc: config: admin.listen: must be set"},
		{name: "environment", env: []string{"VIGIE_TESTSVC_SHUTDOWN_TIMEOUT=soon"}, wantCode: 2, wantStderr: "testsvc: config: environment VIGIE_TESTSVC_SHUTDOWN_TIMEOUT"},
		{name: "unknown flag", args: []string{"-nope"}, wantCode: 2, wantStderr: "testsvc: flag provided but not defined: -nope"},
		{name: "service key", args: []string{"-fail=maybe"}, wantCode: 2, wantStderr: `testsvc: config: fail: "maybe" is not build or run`},
		{name: "build error", args: []string{"-admin.listen=127.0.0.1:0", "-fail=build"}, wantCode: 1, wantStderr: "testsvc: open rules: rules/x.yaml: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := child(t, tt.args...)
			cmd.Env = append(cmd.Env, tt.env...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.Equal(t, tt.wantCode, exitCode(t, cmd.Run()), "stderr: %s", stderr.String())
			if tt.wantStdout != nil {
				require.Regexp(t, tt.wantStdout, stdout.String())
			}
			require.Contains(t, stderr.String(), tt.wantStderr)
		})
	}
}
