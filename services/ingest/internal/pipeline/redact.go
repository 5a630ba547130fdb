package pipeline

import (
	"encoding/json"
	"regexp"
	"strconv"
	"time"

	"github.com/vigie/vigie/pkg/pseudonym"
)

// Redacted replaces a value that could hold a personal identifier.
const Redacted = "[redacted]"

// digitRunRE matches runs of 6 or more digits, separators allowed between them: an IMEI,
// IMSI or phone number however it is written ("+33 6 12 34 56 78", "35-828802-104217-0").
var digitRunRE = regexp.MustCompile(`\+?[0-9](?:[ .\-/()]*[0-9]){5,}`)

// RedactText replaces every run of 6 or more digits (separators allowed) by Redacted.
func RedactText(s string) string {
	if !hasDigitRun(s) {
		return s
	}
	return digitRunRE.ReplaceAllString(s, Redacted)
}

// hasDigitRun is a fast pre-check: at least 6 digits in the string.
func hasDigitRun(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
			if n >= 6 {
				return true
			}
		}
	}
	return false
}

// RedactDocument removes every clear identifier from a decoded event in place, for a
// dead-letter record: the identifier fields imei, imsi and msisdn_dialed become their
// pseudonyms when well-formed (imei_pseudo and tac, imsi_pseudo with mcc and mnc,
// msisdn_pseudo) and Redacted otherwise; anywhere else, strings with a run of 6 or more
// digits (except RFC 3339 timestamps) are redacted, numbers of magnitude 100,000 or more
// become Redacted, and so do object keys with such a run. It reports whether a pseudonym
// was written.
func RedactDocument(doc map[string]any, p *pseudonym.Pseudonymizer) bool {
	add := map[string]any{}
	if v, ok := doc["imei"]; ok {
		delete(doc, "imei")
		if s, ok := v.(string); ok {
			if r, err := p.IMEI(s); err == nil {
				add["imei_pseudo"], add["tac"] = r.Pseudo, r.TAC
			}
		}
		if _, done := add["imei_pseudo"]; !done {
			doc["imei"] = Redacted
		}
	}
	if v, ok := doc["imsi"]; ok {
		delete(doc, "imsi")
		if s, ok := v.(string); ok {
			if r, err := p.IMSI(s); err == nil {
				add["imsi_pseudo"], add["mcc"], add["mnc"] = r.Pseudo, r.MCC, r.MNC
			}
		}
		if _, done := add["imsi_pseudo"]; !done {
			doc["imsi"] = Redacted
		}
	}
	if v, ok := doc["msisdn_dialed"]; ok {
		delete(doc, "msisdn_dialed")
		if s, ok := v.(string); ok {
			if ps, err := p.MSISDN(s); err == nil {
				add["msisdn_pseudo"] = ps
			}
		}
		if _, done := add["msisdn_pseudo"]; !done {
			doc["msisdn_dialed"] = Redacted
		}
	}
	redactValue(doc)
	for k, v := range add {
		doc[k] = v
	}
	return len(add) > 0
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			nv := redactValue(val)
			if hasDigitRun(k) {
				delete(x, k)
				k = RedactText(k)
				for {
					if _, dup := x[k]; !dup {
						break
					}
					k += "_"
				}
			}
			x[k] = nv
		}
		return x
	case []any:
		for i := range x {
			x[i] = redactValue(x[i])
		}
		return x
	case string:
		if !hasDigitRun(x) {
			return x
		}
		if _, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return x
		}
		return RedactText(x)
	case json.Number:
		if f, err := strconv.ParseFloat(string(x), 64); err != nil || f >= 1e5 || f <= -1e5 {
			return Redacted
		}
		return x
	default:
		return v
	}
}
