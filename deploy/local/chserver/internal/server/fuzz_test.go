package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"go.uber.org/zap"
)

// testServer is a server on an engine in a temporary folder, shared by this package's tests.
var testServer *Server

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chserver-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HandshakeTimeout = 2 * time.Second
	cfg.Users = map[string]User{"default": {Password: testPassword, Role: "admin"}}
	rolesDir, err := FindRolesDir()
	if err == nil {
		cfg.Roles, err = LoadRoles(rolesDir, "vigie")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	engine, err := OpenEngine("", cfg, 4)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open chdb:", err)
		return 1
	}
	defer engine.Close()
	testServer, err = New(cfg, engine, zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, "new server:", err)
		return 1
	}
	return m.Run()
}

// testPassword is the password of the test server's user, default.
const testPassword = "fuzz-s3cret"

// clientPackets builds well-formed client input, the seeds the fuzzer mutates.
type clientPackets struct{ b proto.Buffer }

func (p *clientPackets) hello(user, password string) *clientPackets {
	proto.ClientHello{Name: "fuzz", Major: 1, ProtocolVersion: serverRevision, Database: "default", User: user, Password: password}.Encode(&p.b)
	p.b.PutString("") // the addendum: quota key
	return p
}

func (p *clientPackets) ping() *clientPackets { p.b.PutByte(clientPing); return p }

func (p *clientPackets) query(body string, settings ...proto.Setting) *clientPackets {
	proto.Query{
		ID: "q", Body: body, Stage: proto.StageComplete, Settings: settings,
		Info: proto.ClientInfo{
			ProtocolVersion: serverRevision, Major: 1, Interface: proto.InterfaceTCP, Query: proto.ClientQueryInitial,
		},
	}.EncodeAware(&p.b, serverRevision)
	return p
}

// block appends a Data packet with a block of UInt32 and String columns (no rows: the end).
func (p *clientPackets) block(rows int) *clientPackets {
	p.b.PutByte(clientData)
	p.b.PutString("")
	proto.BlockInfo{BucketNum: -1}.Encode(&p.b)
	if rows == 0 {
		p.b.PutUVarInt(0)
		p.b.PutUVarInt(0)
		return p
	}
	p.b.PutUVarInt(2)
	p.b.PutUVarInt(uint64(rows))
	p.b.PutString("a")
	p.b.PutString("UInt32")
	p.b.PutBool(false) // no custom serialization (revision 54454 and later)
	for i := range rows {
		p.b.PutUInt32(uint32(i))
	}
	p.b.PutString("s")
	p.b.PutString("String")
	p.b.PutBool(false)
	for i := range rows {
		p.b.PutString(fmt.Sprint(i))
	}
	return p
}

func (p *clientPackets) bytes() []byte { return p.b.Buf }

func newPackets() *clientPackets { return &clientPackets{} }

// serveInput runs one connection that reads input as a client's bytes (then the client's end
// of input), and returns the connection's error. It fails the test if the connection hangs.
func serveInput(t testing.TB, input []byte) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(testServer, srv, zap.NewNop())
	done := make(chan error, 1)
	go func() {
		err := c.serve(context.Background())
		_ = srv.Close()
		done <- err
	}()
	go func() {
		_, _ = client.Write(input)
		_ = client.(*net.TCPConn).CloseWrite()
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("connection did not end on input %q", input)
		return nil
	}
}

func TestServeInput(t *testing.T) {
	// The table the insert seeds write to.
	s, err := testServer.engine.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Exec("CREATE TABLE IF NOT EXISTS default.fuzz (a UInt32, s String) ENGINE = Memory")
	s.Release()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		input   []byte
		wantErr bool
	}{
		{"hello and ping", newPackets().hello("default", testPassword).ping().bytes(), false},
		{"insert", newPackets().hello("default", testPassword).query("INSERT INTO default.fuzz (a, s) FORMAT Native").block(0).block(3).block(0).bytes(), false},
		{"bad password", newPackets().hello("default", "x").bytes(), true},
		{"no hello", newPackets().ping().bytes(), true},
		{"truncated query", newPackets().hello("default", testPassword).query("SELECT 1").bytes()[:len(newPackets().hello("default", testPassword).bytes())+10], true},
		{"unknown packet", append(newPackets().hello("default", testPassword).bytes(), 99), true},
		{"huge string", append(newPackets().hello("default", testPassword).bytes(), clientQuery, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := serveInput(t, c.input)
			if c.wantErr && err == nil {
				t.Fatal("expected the connection to end on an error")
			}
			if !c.wantErr && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}
}

// FuzzServeInput feeds arbitrary client bytes to a connection: it must end (with an error
// or not) and never crash the server.
func FuzzServeInput(f *testing.F) {
	f.Add(newPackets().hello("default", testPassword).ping().bytes())
	f.Add(newPackets().hello("default", testPassword).query("SELECT number, toString(number) FROM numbers(3)").block(0).bytes())
	f.Add(newPackets().hello("default", testPassword).query("INSERT INTO default.fuzz (a, s) FORMAT Native").block(0).block(2).block(0).bytes())
	f.Add(newPackets().hello("default", testPassword).query("SELECT 1", proto.Setting{Key: "max_threads", Value: "1"}).block(0).bytes())
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, input []byte) {
		err := serveInput(t, input)
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection timed out instead of failing: %v", err)
		}
	})
}

// FuzzParseType checks the column type parser on arbitrary type names.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"UInt8", "Array(Nullable(String))", "Map(String, UInt64)", "Tuple(a String, `b c` Int32)",
		"LowCardinality(Nullable(String))", "Enum8('a(' = 1, 'b' = 2)", "DateTime64(3, 'UTC')", "Decimal(18, 4)", "FixedString(16)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := parseType(s)
		if err != nil {
			return
		}
		// Walking a short buffer with the parsed type must fail cleanly, never panic.
		buf := binary.AppendUvarint(nil, 3)
		_ = walkColumn(&sliceSource{b: append(buf, make([]byte, 40)...)}, typ, 3)
	})
}
