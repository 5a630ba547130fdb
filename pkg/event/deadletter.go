package event

import (
	"strings"
)

// Dead-letter records are checked here, in the codec, so that every service that
// dead-letters writes the same allow-list (EncodeDLQ calls allowList): a known reason code,
// texts that cannot hold an identifier, identifiers of the contract's own form, sizes and
// positions. Whatever fails its check is replaced by a fixed text or left out, never
// "redacted": a redaction has to recognise every way a number can be written (escaped,
// split, as a float, in another script), an allow-list does not.

// reasonTexts says what each reason means; it is the record's error when the service's own
// message does not pass safeText.
var reasonTexts = map[string]string{
	ReasonMalformedJSON:             "the line is not a JSON object",
	ReasonSchemaInvalid:             "the event does not match detector-event.v1",
	ReasonSensorMismatch:            "sensor_id is not the authenticated sensor",
	ReasonPseudonymiseFailed:        "an identifier could not be pseudonymised",
	ReasonInvalidText:               "a string breaks the text rules: invalid UTF-8, a control character, or a long digit run in a label",
	ReasonObservedAtInFuture:        "observed_at is later than the time of receipt plus the allowed clock skew",
	ReasonObservedAtBeyondRetention: "observed_at is earlier than the time of receipt minus the retention",
	ReasonEventIDConflict:           "the (sensor_id, event_id) was stored with other content; the first version stays",
	ReasonDecodeFailed:              "the message could not be decoded",
	ReasonUnknownSensor:             "the sensor is not in the reference data",
	ReasonEnrichFailed:              "the event could not be enriched",
	ReasonWriteFailed:               "the event could not be stored",
	ReasonRuleFailed:                "a rule could not evaluate the event",
	ReasonOther:                     "the message could not be processed",
}

// Limits of the texts of a dead-letter record.
const (
	maxErrorText   = 512
	maxReasonText  = 200
	maxFieldErrors = 64
	maxIDText      = 64
	// maxTextDigits is the most digits a text may hold in all: the shortest identifier
	// Vigie protects, a national phone number, has 9 after its leading 0. Counting every
	// digit, wherever it stands, also counts escaped forms ("\u0036" holds four).
	maxTextDigits = 8
	// maxIDDigitRun is the longest run of digits an identifier (event_id, sensor_id) may
	// hold, separators ('-', '.', '_', ':') between digits not ending the run.
	maxIDDigitRun = 8
	// hmacHex is the length of a body's keyed hash: 16 bytes in hex, like a pseudonym.
	hmacHex = 32
)

// ReasonText returns what a reason code means ("" for an unknown code).
func ReasonText(reason string) string { return reasonTexts[reason] }

// Key is the Kafka key of the record: its sensor_id when that passes the allow-list, else
// empty.
func (rec *DLQ) Key() []byte {
	if safeID(rec.SensorID) {
		return []byte(rec.SensorID)
	}
	return nil
}

// allowList returns the record as it may be written: every field checked, the rest left out.
func (rec *DLQ) allowList() DLQ {
	out := DLQ{
		Reason:   rec.Reason,
		Service:  rec.Service,
		Error:    rec.Error,
		FailedAt: rec.FailedAt,
	}
	if _, ok := reasonTexts[out.Reason]; !ok {
		out.Reason = ReasonOther
	}
	if !safeID(out.Service) {
		out.Service = "unknown"
	}
	if !safeText(out.Error, maxErrorText) {
		out.Error = reasonTexts[out.Reason]
	}
	for i, fe := range rec.Errors {
		if i == maxFieldErrors {
			break
		}
		reason := fe.Reason
		if !safeText(reason, maxReasonText) {
			reason = "invalid"
		}
		out.Errors = append(out.Errors, FieldError{Pointer: safePointer(fe.Pointer), Reason: reason})
	}
	if safeID(rec.SensorID) {
		out.SensorID = rec.SensorID
	}
	if safeID(rec.EventID) {
		out.EventID = rec.EventID
	}
	if s := rec.Source; s != nil && safeID(s.Topic) {
		out.Source = &Source{Topic: s.Topic, Partition: s.Partition, Offset: s.Offset}
	}
	if b := rec.Body; b != nil {
		out.Body = &Body{Bytes: b.Bytes}
		if len(b.HMAC) == hmacHex && isHex(b.HMAC) {
			out.Body.HMAC = b.HMAC
			if safeID(rec.KeyVersion) && len(rec.KeyVersion) <= 32 {
				out.KeyVersion = rec.KeyVersion
			}
		}
	}
	return out
}

// safeText reports whether s is printable ASCII of at most max bytes holding at most
// maxTextDigits digits: a text no identifier fits in, however it is written.
func safeText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < ' ' || c > '~':
			return false
		case c >= '0' && c <= '9':
			digits++
		}
	}
	return digits <= maxTextDigits
}

// safeID reports whether s has the form of a Vigie identifier — at most 64 letters, digits,
// '-', '.', '_' and ':' — with no run of more than maxIDDigitRun digits (separators do not
// end a run): a ULID or a sensor id passes, an IMEI or a phone number does not.
func safeID(s string) bool {
	if s == "" || len(s) > maxIDText {
		return false
	}
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			run++
			if run > maxIDDigitRun {
				return false
			}
		case c == '-' || c == '.' || c == '_' || c == ':':
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			run = 0
		default:
			return false
		}
	}
	return true
}

// safePointer keeps the tokens of a JSON pointer that are field names of the contract's
// form (lower-case letters, digits and '_', starting with a letter, at most 64) or array
// indexes below 10,000; any other token, which could be a key a sender chose, becomes "*".
func safePointer(p string) string {
	if p == "" {
		return ""
	}
	toks := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var sb strings.Builder
	for _, t := range toks {
		sb.WriteByte('/')
		if fieldName(t) || index(t) {
			sb.WriteString(t)
		} else {
			sb.WriteByte('*')
		}
	}
	if out := sb.String(); safeText(out, maxReasonText) {
		return out
	}
	return "/*"
}

func fieldName(t string) bool {
	if t == "" || len(t) > 64 || t[0] < 'a' || t[0] > 'z' {
		return false
	}
	digits := 0
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= 'a' && c <= 'z' || c == '_':
		case c >= '0' && c <= '9':
			digits++
		default:
			return false
		}
	}
	return digits <= 2
}

func index(t string) bool {
	if t == "" || len(t) > 4 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
