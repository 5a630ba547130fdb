package server

import (
	"strings"

	"github.com/ClickHouse/ch-go/proto"
)

// Protocol revisions this server speaks: 54459 brings query parameters ({name:Type} values
// in the Query packet). From 54454 on, every column of a data block carries a
// custom-serialization flag, which chDB's Native format lacks: the server adds it to the
// blocks it sends and drops it from the blocks it receives. Below 54429 clients send
// settings in a binary form this server does not read.
const (
	serverRevision      = 54459
	minClientRevision   = 54429
	revisionQueryStart  = 54449
	revisionQuotaInInfo = 54060
	revisionDistDepth   = 54448
	revisionPatch       = 54401
	revisionOtel        = 54442
	revisionParallel    = 54453
	revisionSecret      = 54441
	revisionParameters  = 54459
	revisionAddendum    = 54458
	// revisionProfileEventsInInsert: the server answers each inserted block with ProfileEvents.
	revisionProfileEventsInInsert = 54456
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
	// Parameters are the values of the query's {name:Type} placeholders, in their text form.
	Parameters map[string]string
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
	if q.Body, err = r.str(); err != nil {
		return err
	}
	if revision < revisionParameters {
		return nil
	}
	for {
		key, err := r.str()
		if err != nil {
			return err
		}
		if key == "" {
			return nil
		}
		if _, err := r.uvarint(); err != nil { // flags
			return err
		}
		value, err := r.str()
		if err != nil {
			return err
		}
		if q.Parameters == nil {
			q.Parameters = map[string]string{}
		}
		q.Parameters[key] = unquoteFieldDump(value)
	}
}

// unquoteFieldDump reads a parameter value as clients send it: ClickHouse's Field dump of
// a string, 'text' with backslash escapes. Anything else is taken as it is.
func unquoteFieldDump(v string) string {
	if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			switch v[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			case '0':
				c = 0
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			default:
				c = v[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
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

// progress sends a Progress packet: rows and bytes read since the last one.
func (w *wireWriter) progress(p proto.Progress, revision uint64) error {
	return w.packet(func(b *proto.Buffer) {
		proto.ServerCodeProgress.Encode(b)
		p.EncodeAware(b, int(revision))
	})
}

// profileEvents sends a ProfileEvents packet with an empty block (this server keeps no
// profile events), never compressed, as ClickHouse sends them.
func (w *wireWriter) profileEvents() error {
	return w.packet(func(b *proto.Buffer) {
		proto.ServerProfileEvents.Encode(b)
		b.PutString("")
		proto.BlockInfo{BucketNum: -1}.Encode(b)
		b.PutUVarInt(0) // columns
		b.PutUVarInt(0) // rows
	})
}

// profileInfo sends a ProfileInfo packet: what the result held.
func (w *wireWriter) profileInfo(p proto.Profile) error {
	return w.packet(func(b *proto.Buffer) { p.EncodeAware(b, 0) }) // the encoder writes the packet code
}
