package server

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ClickHouse/ch-go/proto"
)

// pingRevision is the protocol revision Ping speaks: below the hello addendum (54458), so that
// it answers the same against a server of any revision, this one or an older build.
const pingRevision = 54453

// Ping does a native-protocol handshake and ping against addr: the readiness check of
// scripts (`chserver -ping addr`). It needs no chDB library.
func Ping(ctx context.Context, addr, user, password string) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	defer func() { _ = nc.Close() }()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = nc.SetDeadline(deadline)
	w := newWireWriter(nc)
	if err := w.packet(func(b *proto.Buffer) {
		proto.ClientHello{Name: "chserver-ping", Major: 1, Minor: 0, ProtocolVersion: pingRevision, User: user, Password: password}.Encode(b)
	}); err != nil {
		return err
	}
	if err := w.packet(func(b *proto.Buffer) { b.PutByte(clientPing) }); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	r := proto.NewReader(nc)
	for {
		code, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, err)
		}
		switch proto.ServerCode(code) {
		case proto.ServerCodeHello:
			var h proto.ServerHello
			if err := h.DecodeAware(r, pingRevision); err != nil {
				return fmt.Errorf("%w: decode hello: %w", ErrNotReady, err)
			}
		case proto.ServerCodePong:
			return nil
		case proto.ServerCodeException:
			var e proto.Exception
			if err := e.DecodeAware(r, pingRevision); err != nil {
				return fmt.Errorf("%w: decode exception: %w", ErrNotReady, err)
			}
			return fmt.Errorf("%w: code %d: %s", ErrNotReady, e.Code, e.Message)
		default:
			return fmt.Errorf("%w: unexpected packet %d", ErrNotReady, code)
		}
	}
}
