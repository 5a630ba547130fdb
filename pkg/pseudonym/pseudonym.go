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
// Keys carry a version. Several versions can be loaded (to read pseudonyms of an older key
// during a rotation), one is active for writing; every pseudonym is written with the version
// of the key that made it. Pseudonyms of different versions are not comparable.
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
)

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
	pool      sync.Pool
}

// hasher is a reusable HMAC state with a scratch buffer, pooled to keep the hot path free of
// allocations other than the result string.
type hasher struct {
	mac hash.Hash
	buf [64]byte
	sum [sha256.Size]byte
}

func newPseudonymizer(version string, secret []byte, defaultCC string) *Pseudonymizer {
	key := append([]byte(nil), secret...)
	p := &Pseudonymizer{version: version, defaultCC: defaultCC}
	p.pool.New = func() any { return &hasher{mac: hmac.New(sha256.New, key)} }
	return p
}

// KeyVersion is the version of the key this Pseudonymizer writes with.
func (p *Pseudonymizer) KeyVersion() string { return p.version }

// pseudo returns hex(HMAC(label + digits)[:Size]); digits holds at most 40 bytes.
func (p *Pseudonymizer) pseudo(label, digits string) string {
	h := p.pool.Get().(*hasher)
	n := copy(h.buf[:], label)
	n += copy(h.buf[n:], digits)
	h.mac.Reset()
	h.mac.Write(h.buf[:n])
	sum := h.mac.Sum(h.sum[:0])
	var out [2 * Size]byte
	hex.Encode(out[:], sum[:Size])
	p.pool.Put(h)
	return string(out[:])
}

// Text returns the pseudonym of an identifier that is not a number, in the domain of label
// (LabelUASID, LabelOperatorID, LabelEventID): the same text gives the same pseudonym.
func (p *Pseudonymizer) Text(label, s string) string { return p.tag(label, []byte(s)) }

// Body returns a keyed hash of a message (hex, like a pseudonym): what a dead-letter record
// keeps of a body it may not hold, so that repeats of one body can be matched.
func (p *Pseudonymizer) Body(b []byte) string { return p.tag(labelBody, b) }

// tag is hex(HMAC(label + b)[:Size]).
func (p *Pseudonymizer) tag(label string, b []byte) string {
	h := p.pool.Get().(*hasher)
	h.mac.Reset()
	h.mac.Write([]byte(label))
	h.mac.Write(b)
	sum := h.mac.Sum(h.sum[:0])
	out := hex.EncodeToString(sum[:Size])
	p.pool.Put(h)
	return out
}

// IMEI is the result of pseudonymising an IMEI.
type IMEI struct {
	// Pseudo is the pseudonym of the first 14 digits (TAC + serial).
	Pseudo string
	// TAC is the first 8 digits: manufacturer and model.
	TAC string
	// SerialPrefix is the first 3 digits of the serial (digits 9 to 11): the production block.
	SerialPrefix string
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
	r := IMEI{
		Pseudo:       p.pseudo(labelIMEI, imei[:14]),
		TAC:          imei[:8],
		SerialPrefix: imei[8:11],
	}
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
}

// IMSI pseudonymises an IMSI of 6 to 15 digits and splits its MCC and MNC.
func (p *Pseudonymizer) IMSI(imsi string) (IMSI, error) {
	if len(imsi) < 6 || len(imsi) > 15 || !allDigits(imsi) {
		return IMSI{}, ErrInvalidIMSI
	}
	mcc, mnc := SplitPLMN(imsi)
	return IMSI{Pseudo: p.pseudo(labelIMSI, imsi), MCC: mcc, MNC: mnc}, nil
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
