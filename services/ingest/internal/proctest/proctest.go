// Package proctest runs an ingest binary as a process of its own for tests and benchmarks,
// as an operator would: with credentials, keys and topics of its own, configured through
// VIGIE_INGEST_* variables, against the real broker; and reads what the kernel says of it
// (resident memory, CPU time) and what its admin port says (metrics).
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
	"github.com/vigie/vigie/services/ingest/internal/server"
)

// Options say what to run.
type Options struct {
	// Bin is the binary; Env what it gets beside the configuration Start writes (which
	// Env may override, e.g. limits).
	Bin string
	Env []string
	// Brokers is the broker the topics are created on and ingest produces to.
	Brokers []string
	// Sensors are given a token each, as sensors of SensorType (a managed access system
	// when empty).
	Sensors    []string
	SensorType reference.SensorType
	// RawTopic and DLQTopic are created with Partitions partitions.
	RawTopic, DLQTopic string
	Partitions         int
	// Stderr receives the process's standard error; nil: kept for Stderr.
	Stderr io.Writer
}

// Process is one running ingest.
type Process struct {
	Cmd *exec.Cmd
	// URL is the events API's; Admin the admin port's host:port.
	URL, Admin string
	// Tokens are the sensors' bearer tokens.
	Tokens map[string]string
	opts   Options
	dir    string
	stderr lockedBuffer
	done   chan struct{}
}

// Start creates the process's credentials, keys and topics, starts it and waits until its
// /readyz answers 200 (listening, its dedup window rebuilt), within a minute.
func Start(opts Options) (*Process, error) {
	p := &Process{Tokens: map[string]string{}, opts: opts, done: make(chan struct{})}
	var err error
	if p.dir, err = os.MkdirTemp("", "ingest-proc"); err != nil {
		return nil, err
	}
	if err := p.start(); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *Process) start() error {
	f := &sensorauth.File{}
	st := p.opts.SensorType
	if st == "" {
		st = reference.SensorMAS
	}
	for _, s := range p.opts.Sensors {
		entry, tok, err := sensorauth.NewEntry(s, st)
		if err != nil {
			return err
		}
		f.Credentials = append(f.Credentials, entry)
		p.Tokens[s] = tok
	}
	cred := filepath.Join(p.dir, "credentials.yaml")
	if err := f.WriteFile(cred); err != nil {
		return err
	}
	keys := filepath.Join(p.dir, "keys.yaml")
	if err := os.WriteFile(keys, []byte("active: p1\ndefault_country_code: \"33\"\nblock_key: "+hex.EncodeToString([]byte("proctest-block-key-0123456789abc"))+"\nkeys:\n  p1: "+hex.EncodeToString([]byte("proctest-key-0123456789abcdefghi"))+"\n"), 0o600); err != nil {
		return err
	}
	// Ingest does not create topics (`vigiectl topics apply` does).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	_, err := kafka.ApplyTopics(ctx, kafka.Config{Brokers: p.opts.Brokers},
		[]kafka.TopicSpec{{Name: p.opts.RawTopic, Partitions: p.opts.Partitions}, {Name: p.opts.DLQTopic, Partitions: p.opts.Partitions}}, nil)
	cancel()
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	if p.Admin, err = freeAddr(); err != nil {
		return err
	}
	p.URL = "http://" + addr + server.Path
	p.Cmd = exec.Command(p.opts.Bin)
	p.Cmd.Env = append(os.Environ(),
		"VIGIE_INGEST_LISTEN="+addr,
		"VIGIE_INGEST_ADMIN_LISTEN="+p.Admin,
		"VIGIE_INGEST_CREDENTIALS_FILE="+cred,
		"VIGIE_INGEST_PSEUDONYM_KEY_FILE="+keys,
		"VIGIE_INGEST_KAFKA_BROKERS="+strings.Join(p.opts.Brokers, ","),
		"VIGIE_INGEST_TOPICS_RAW="+p.opts.RawTopic,
		"VIGIE_INGEST_TOPICS_DLQ="+p.opts.DLQTopic,
		"VIGIE_INGEST_LOG_LEVEL=warn",
	)
	p.Cmd.Env = append(p.Cmd.Env, p.opts.Env...)
	p.Cmd.Stderr = &p.stderr
	if p.opts.Stderr != nil {
		p.Cmd.Stderr = p.opts.Stderr
	}
	if err := p.Cmd.Start(); err != nil {
		return err
	}
	go func() {
		_ = p.Cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("ingest exited before it was ready: %s", p.Stderr())
		default:
		}
		if resp, err := http.Get("http://" + p.Admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond) // waiting for another process
	}
	return fmt.Errorf("ingest was not ready on %s within a minute", p.Admin)
}

// Stop interrupts the process (SIGINT: it drains), kills it if it has not exited within 30
// s, and removes its files.
func (p *Process) Stop() {
	if p.Cmd != nil && p.Cmd.Process != nil {
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(p.dir)
}

// RawTopic is the topic the process produces accepted events to.
func (p *Process) RawTopic() string { return p.opts.RawTopic }

// Stderr is what the process wrote to its standard error (unless Options.Stderr took it).
func (p *Process) Stderr() string { return p.stderr.String() }

// Memory is the process's resident set size now and its high-water mark, in MB, from
// /proc/<pid>/status (VmRSS, VmHWM).
func (p *Process) Memory() (rss, hwm float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for key, dst := range map[string]*float64{"VmRSS:": &rss, "VmHWM:": &hwm} {
			if v, ok := strings.CutPrefix(sc.Text(), key); ok {
				kb, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
				if err != nil {
					return 0, 0, fmt.Errorf("/proc status %s: %w", key, err)
				}
				*dst = kb / 1024
			}
		}
	}
	return rss, hwm, sc.Err()
}

// CPUSeconds is the process's user and system CPU time, from /proc/<pid>/stat.
func (p *Process) CPUSeconds() (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100, nil // USER_HZ
}

// Metrics returns the samples of the admin port's /metrics by series (name and labels).
func (p *Process) Metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				vals[line[:i]] = v
			}
		}
	}
	return vals, sc.Err()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
