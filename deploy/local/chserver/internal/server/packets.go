package server

import (
	"github.com/ClickHouse/ch-go/proto"
)

// Protocol revisions this server speaks. From 54454 on, data blocks carry custom
// serialization flags that chDB's Native format lacks; below 54429 clients send settings
// in a binary form this server does not read.
const (
	serverRevision      = 54453
	minClientRevision   = 54429
	revisionQueryStart  = 54449
	revisionQuotaInInfo = 54060
	revisionDistDepth   = 54448
	revisionPatch       = 54401
	revisionOtel        = 54442
	revisionParallel    = 54453
	revisionSecret      = 54441
	revisionParameters  = 54459
)

// Client packet codes.
const (
	clientHello  = 0
	clientQuery  = 1
	clientData   = 2
	clientCancel = 3
	clientPing   = 4
)

// clientHelloPacket is the client's part of the handshake.
type clientHelloPacket struct {
	Name     string
	Revision uint64
	Database string
	User     string
	Password string
}

func (h *clientHelloPacket) decode(r *wireReader) error {
	var err error
	if h.Name, err = r.str(); err != nil {
		return err
	}
	if _, err = r.uvarint(); err != nil { // major
		return err
	}
	if _, err = r.uvarint(); err != nil { // minor
		return err
	}
	if h.Revision, err = r.uvarint(); err != nil {
		return err
	}
	if h.Database, err = r.str(); err != nil {
		return err
	}
	if h.User, err = r.str(); err != nil {
		return err
	}
	h.Password, err = r.str()
	return err
}

// setting is one per-query setting, as the client sends it (values are strings).
type setting struct {
	Key   string
	Value string
}

// queryPacket is a client's Query packet.
type queryPacket struct {
	ID          string
	Settings    []setting
	Compression bool
	Body        string
}

func (q *queryPacket) decode(r *wireReader, revision uint64) error {
	var err error
	if q.ID, err = r.str(); err != nil {
		return err
	}
	if err := skipClientInfo(r, revision); err != nil {
		return err
	}
	for {
		key, err := r.str()
		if err != nil {
			return err
		}
		if key == "" {
			break
		}
		if _, err := r.uvarint(); err != nil { // flags
			return err
		}
		value, err := r.str()
		if err != nil {
			return err
		}
		q.Settings = append(q.Settings, setting{Key: key, Value: value})
	}
	if revision >= revisionSecret {
		if _, err := r.str(); err != nil {
			return err
		}
	}
	stage, err := r.uvarint()
	if err != nil {
		return err
	}
	if stage > 2 {
		return protocolErrorf("unknown query stage %d", stage)
	}
	compression, err := r.uvarint()
	if err != nil {
		return err
	}
	if compression > 1 {
		return protocolErrorf("unknown compression flag %d", compression)
	}
	q.Compression = compression == 1
	q.Body, err = r.str()
	return err
}

// skipClientInfo reads the client information block of a Query packet; this server does not
// use it (ClickHouse's ClientInfo::read).
func skipClientInfo(r *wireReader, revision uint64) error {
	kind, err := r.uint8()
	if err != nil {
		return err
	}
	if kind == 0 {
		return nil
	}
	if kind > 2 {
		return protocolErrorf("unknown query kind %d", kind)
	}
	for range 3 { // initial user, query id, address
		if _, err := r.str(); err != nil {
			return err
		}
	}
	if revision >= revisionQueryStart {
		if _, err := r.uint64le(); err != nil {
			return err
		}
	}
	iface, err := r.uint8()
	if err != nil {
		return err
	}
	if iface != 1 {
		return protocolErrorf("client interface %d is not TCP", iface)
	}
	for range 3 { // os user, hostname, client name
		if _, err := r.str(); err != nil {
			return err
		}
	}
	for range 3 { // major, minor, protocol version
		if _, err := r.uvarint(); err != nil {
			return err
		}
	}
	if revision >= revisionQuotaInInfo {
		if _, err := r.str(); err != nil {
			return err
		}
	}
	if revision >= revisionDistDepth {
		if _, err := r.uvarint(); err != nil {
			return err
		}
	}
	if revision >= revisionPatch {
		if _, err := r.uvarint(); err != nil {
			return err
		}
	}
	if revision >= revisionOtel {
		hasTrace, err := r.uint8()
		if err != nil {
			return err
		}
		if hasTrace == 1 {
			if err := r.copyN(nil, 16+8); err != nil {
				return err
			}
			if _, err := r.str(); err != nil {
				return err
			}
			if _, err := r.uint8(); err != nil {
				return err
			}
		}
	}
	if revision >= revisionParallel {
		for range 3 {
			if _, err := r.uvarint(); err != nil {
				return err
			}
		}
	}
	return nil
}

// serverHello is what the server tells about itself in the handshake.
type serverHello struct {
	Major, Minor, Patch int
	Timezone            string
	DisplayName         string
}

func (w *wireWriter) hello(h serverHello, revision uint64) error {
	return w.packet(func(b *proto.Buffer) {
		(&proto.ServerHello{
			Name:        "ClickHouse",
			Major:       h.Major,
			Minor:       h.Minor,
			Revision:    serverRevision,
			Timezone:    h.Timezone,
			DisplayName: h.DisplayName,
			Patch:       h.Patch,
		}).EncodeAware(b, int(revision))
	})
}

func (w *wireWriter) pong() error {
	return w.packet(func(b *proto.Buffer) { proto.ServerCodePong.Encode(b) })
}

func (w *wireWriter) endOfStream() error {
	return w.packet(func(b *proto.Buffer) { proto.ServerCodeEndOfStream.Encode(b) })
}

func (w *wireWriter) exception(code int32, message string) error {
	return w.packet(func(b *proto.Buffer) {
		proto.ServerCodeException.Encode(b)
		(&proto.Exception{Code: proto.Error(code), Name: "DB::Exception", Message: message}).EncodeAware(b, 0)
	})
}
