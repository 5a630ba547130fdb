// Package pseudonym replaces personal identifiers (IMEI, IMSI, dialled numbers) by keyed
// pseudonyms and extracts their non-personal parts (the IMEI's TAC, the IMSI's MCC/MNC).
//
// A pseudonym is HMAC-SHA256(key, label + normalised identifier) truncated to its first 16
// bytes (128 bits) and written as 32 lowercase hex digits. A plain hash of an IMEI would be
// reversible (about 10^6 serials per TAC); the keyed HMAC is not without the key, which stays
// with the ingest service. The label ("imei:", "imsi:", "msisdn:") separates the domains so
// that equal digit strings of different kinds never share a pseudonym.
//
// Why 128 bits in hex: 128 bits keep accidental collisions negligible (about n²/2^129, so
// below 10^-15 for 10^12 devices) while halving the size of the full 256-bit output in
// every Kafka message, ClickHouse row and index; hex (rather than base32) is the encoding
// every tool already speaks (ClickHouse unhex(), SQL literals, grep), has a single case and
// no padding, and its length is fixed, so a column can be FixedString(32).
//
// Keys carry a version and form a chain, oldest first. The pseudonym of version k1 (the
// first) is the HMAC above; the pseudonym of each later version is the HMAC, with that
// version's key, of the pseudonym of the version before it:
//
//	p(k1) = HMAC(K1, label + identifier)      p(kN) = HMAC(KN, "chain:" + p(kN-1))
//
// so that a rotation can carry a device's identity over without the clear identifier: the
// holder of the new key maps every stored pseudonym of the old version forward (Forward), and
// a device seen before and after the rotation stays one device. Whoever holds only an old key
// cannot compute the new pseudonyms. All listed versions are loaded (a pseudonym of version
// kN needs K1..KN); one is active for writing, and every pseudonym is written with its version.
//
// Serial blocks (the TAC and the first 3 serial digits, the production block that
// BATCH_RANGE groups by) are written as block ids: HMAC of a block key of their own, which is
// not a pseudonym key. Stored data then holds no serial digit: with the pseudonym keys an
// IMEI is still one of 10^6 serials of its TAC away, not one of 1,000.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Size is the length in bytes of a pseudonym before hex encoding.
const Size = 16

// MinKeyBytes is the shortest accepted secret: the HMAC-SHA256 block-size-independent
// recommendation of a key at least as long as the hash output.
const MinKeyBytes = 32

// Errors returned for identifiers that cannot be pseudonymised.
var (
	ErrInvalidIMEI   = errors.New("imei must be 14 to 16 digits")
	ErrInvalidIMSI   = errors.New("imsi must be 6 to 15 digits")
	ErrInvalidMSISDN = errors.New("msisdn must hold 2 to 15 digits, an optional leading + or 00, and separators")
)

// Domain labels prefixed to the identifier inside the HMAC.
const (
	labelIMEI   = "imei:"
	labelIMSI   = "imsi:"
	labelMSISDN = "msisdn:"
	labelBody   = "body:"
	labelChain  = "chain:"
	labelBlock  = "block:"
	labelRoute  = "route:"
)

// RouteLen is the length of a device route in hex digits (8 bits): see Route.
const RouteLen = 2

// BlockIDLen is the length of a serial-block id in hex digits (64 bits): a TAC has at most
// 1,000 blocks and the country a few million, so collisions stay negligible (n²/2^65).
const BlockIDLen = 16

// Labels of the identifiers that are not numbers (Text).
const (
	LabelUASID      = "uas:"      // a drone's Remote ID
	LabelOperatorID = "operator:" // a drone operator's registration
	LabelEventID    = "event_id:" // an event id holding what could be a number of a person
)

// Pseudonymizer makes pseudonyms with one key version. It is safe for concurrent use.
type Pseudonymizer struct {
	version   string
	defaultCC string
	chain     []*macPool // the keys of the versions up to this one, oldest first
	block     *macPool
}

// macPool holds reusable HMAC states of one key, pooled to keep the hot path free of
// allocations other than the result string.
type macPool struct{ sync.Pool }

type hasher struct {
	mac hash.Hash
	buf [64]byte
	sum [sha256.Size]byte
}

func newMACPool(secret []byte) *macPool {
	key := append([]byte(nil), secret...)
	m := &macPool{}
	m.New = func() any { return &hasher{mac: hmac.New(sha256.New, key)} }
	return m
}

// sum returns hex(HMAC(a + b)[:n/2]) in n hex digits. Inputs that fit the scratch buffer
// (every identifier) are hashed without an allocation.
func (m *macPool) sum(a, b string, n int) string {
	h := m.Get().(*hasher)
	h.mac.Reset()
	if len(a)+len(b) <= len(h.buf) {
		k := copy(h.buf[:], a)
		k += copy(h.buf[k:], b)
		h.mac.Write(h.buf[:k])
	} else {
		h.mac.Write([]byte(a))
		h.mac.Write([]byte(b))
	}
	sum := h.mac.Sum(h.sum[:0])
	var out [2 * Size]byte
	hex.Encode(out[:], sum[:n/2])
	m.Put(h)
	return string(out[:n])
}

// KeyVersion is the version of the key this Pseudonymizer writes with.
func (p *Pseudonymizer) KeyVersion() string { return p.version }

// pseudo returns the pseudonym of label + s: the first key's HMAC, carried along the chain
// to this version.
func (p *Pseudonymizer) pseudo(label, s string) string {
	return p.forward(p.chain[0].sum(label, s, 2*Size), 1)
}

// device returns the pseudonym of a device identifier and its route: 8 bits of the first
// key's HMAC of the first version's pseudonym, the same under every later version.
func (p *Pseudonymizer) device(label, s string) (pseudo, route string) {
	first := p.chain[0].sum(label, s, 2*Size)
	return p.forward(first, 1), p.chain[0].sum(labelRoute, first, RouteLen)
}

// forward carries a pseudonym of the version chain[from-1] to this one.
func (p *Pseudonymizer) forward(s string, from int) string {
	for _, m := range p.chain[from:] {
		s = m.sum(labelChain, s, 2*Size)
	}
	return s
}

// Forward maps a pseudonym of the version just before this one to this version: what a
// rotation applies to stored pseudonyms. It needs only this version's key.
func (p *Pseudonymizer) Forward(prev string) string {
	return p.forward(prev, len(p.chain)-1)
}

// BlockID returns the id of the serial block of an IMEI's first 11 digits (TAC and the
// first 3 serial digits), keyed with the block key.
func (p *Pseudonymizer) BlockID(tacAndBlock string) string {
	return p.block.sum(labelBlock, tacAndBlock, BlockIDLen)
}

// Text returns the pseudonym of an identifier that is not a number, in the domain of label
// (LabelUASID, LabelOperatorID, LabelEventID): the same text gives the same pseudonym.
func (p *Pseudonymizer) Text(label, s string) string { return p.pseudo(label, s) }

// Body returns a keyed hash of a message (hex, like a pseudonym) with this version's key:
// what a dead-letter record keeps of a body it may not hold, so that repeats of one body can
// be matched.
func (p *Pseudonymizer) Body(b []byte) string {
	m := p.chain[len(p.chain)-1]
	h := m.Get().(*hasher)
	h.mac.Reset()
	h.mac.Write([]byte(labelBody))
	h.mac.Write(b)
	out := hex.EncodeToString(h.mac.Sum(h.sum[:0])[:Size])
	m.Put(h)
	return out
}

// IMEI is the result of pseudonymising an IMEI.
type IMEI struct {
	// Pseudo is the pseudonym of the first 14 digits (TAC + serial).
	Pseudo string
	// TAC is the first 8 digits: manufacturer and model.
	TAC string
	// Block is the id of the serial block (TAC and the first 3 serial digits, the production
	// block), keyed with the block key: equal for the phones of one block, and no digit of
	// the serial.
	Block string
	// Route picks the device's Kafka partition (RouteLen hex digits, pkg/kafka): derived
	// from the first key version's pseudonym, so that a rotation leaves every device on its
	// partition and the correlator's state of a device in one place. 8 bits: with the first
	// key, an IMEI tells which of 256 routes it takes, never which device of a route it is.
	Route string
	// CheckOK reports the Luhn check digit; nil unless the input had exactly 15 digits.
	CheckOK *bool
}

// IMEI pseudonymises an IMEI of 14 digits (no check digit), 15 digits (with a check digit,
// right or wrong: over the air it is often 0) or 16 digits (IMEISV). The pseudonym is keyed
// on the first 14 digits, so the three forms of one device give the same pseudonym.
func (p *Pseudonymizer) IMEI(imei string) (IMEI, error) {
	if len(imei) < 14 || len(imei) > 16 || !allDigits(imei) {
		return IMEI{}, ErrInvalidIMEI
	}
	r := IMEI{TAC: imei[:8], Block: p.BlockID(imei[:11])}
	r.Pseudo, r.Route = p.device(labelIMEI, imei[:14])
	if len(imei) == 15 {
		ok := LuhnValid(imei)
		r.CheckOK = &ok
	}
	return r, nil
}

// IMSI is the result of pseudonymising an IMSI.
type IMSI struct {
	// Pseudo is the pseudonym of the whole IMSI.
	Pseudo string
	// MCC is the mobile country code (3 digits).
	MCC string
	// MNC is the mobile network code (2 or 3 digits, see SplitPLMN).
	MNC string
	// Route is the device's route when the IMSI is its identity (see IMEI.Route).
	Route string
}

// IMSI pseudonymises an IMSI of 6 to 15 digits and splits its MCC and MNC.
func (p *Pseudonymizer) IMSI(imsi string) (IMSI, error) {
	if len(imsi) < 6 || len(imsi) > 15 || !allDigits(imsi) {
		return IMSI{}, ErrInvalidIMSI
	}
	r := IMSI{}
	r.MCC, r.MNC = SplitPLMN(imsi)
	r.Pseudo, r.Route = p.device(labelIMSI, imsi)
	return r, nil
}

// MSISDN pseudonymises a dialled number after NormalizeMSISDN with the configured default
// country code.
func (p *Pseudonymizer) MSISDN(number string) (string, error) {
	var buf [20]byte
	norm, err := appendNormalizedMSISDN(buf[:0], number, p.defaultCC)
	if err != nil {
		return "", err
	}
	return p.pseudo(labelMSISDN, string(norm)), nil
}

// NormalizeMSISDN turns a dialled number into one canonical form so that the different ways
// of writing one number share a pseudonym: separators (space . - / ( )) are removed, a
// leading "00" becomes "+", and, when defaultCC (digits, e.g. "33") is set, a national
// number of 10 digits with a single leading 0 becomes "+" + defaultCC + the rest. Short
// numbers (112, 3631) are kept as they are.
func NormalizeMSISDN(number, defaultCC string) (string, error) {
	b, err := appendNormalizedMSISDN(nil, number, defaultCC)
	return string(b), err
}

func appendNormalizedMSISDN(dst []byte, number, defaultCC string) ([]byte, error) {
	start := len(dst)
	plus := false
	digits := 0
	for i := 0; i < len(number); i++ {
		c := number[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			if digits > 15 {
				return dst, ErrInvalidMSISDN
			}
			dst = append(dst, c)
		case c == '+' && i == 0:
			plus = true
		case c == ' ' || c == '.' || c == '-' || c == '/' || c == '(' || c == ')':
		default:
			return dst, ErrInvalidMSISDN
		}
	}
	if digits < 2 {
		return dst, ErrInvalidMSISDN
	}
	d := dst[start:]
	switch {
	case plus:
	case len(d) >= 4 && d[0] == '0' && d[1] == '0':
		plus = true
		n := copy(d, d[2:])
		dst = dst[:start+n]
	case defaultCC != "" && len(d) == 10 && d[0] == '0' && d[1] != '0':
		national := append([]byte(nil), d[1:]...)
		dst = append(append(dst[:start], defaultCC...), national...)
		plus = true
	}
	if plus {
		dst = append(dst, 0)
		copy(dst[start+1:], dst[start:len(dst)-1])
		dst[start] = '+'
	}
	return dst, nil
}

// LuhnValid reports whether the last digit of s (digits only) is its Luhn check digit.
func LuhnValid(s string) bool {
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String never prints a key.
func (p *Pseudonymizer) String() string {
	return fmt.Sprintf("pseudonymizer(key_version=%s)", p.version)
}
