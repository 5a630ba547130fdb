package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/vigie/vigie/pkg/event"
)

// clearIDs holds every clear identifier the simulator sent, in the forms in which one could
// leak: the IMEI with and without its check digit, the IMSI, the dialled number as sent and
// as digits only.
type clearIDs struct {
	mu  sync.Mutex
	ids map[string]string // digits -> kind
}

func newClearIDs() *clearIDs { return &clearIDs{ids: map[string]string{}} }

func (c *clearIDs) add(e *event.Detector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.IMEI != "" {
		c.ids[e.IMEI] = "imei"
		c.ids[e.IMEI[:14]] = "imei"
	}
	if e.IMSI != "" {
		c.ids[e.IMSI] = "imsi"
	}
	if e.MSISDNDialed != "" && len(e.MSISDNDialed) > 6 {
		d := digitsOnly(e.MSISDNDialed)
		c.ids[d] = "msisdn"
		if strings.HasPrefix(d, "33") {
			c.ids["0"+d[2:]] = "msisdn" // national form
			c.ids[d[2:]] = "msisdn"
		}
	}
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Lengths of the identifier forms, to slide over long digit runs.
var idLengths = []int{9, 10, 11, 14, 15}

// find returns the first clear identifier in text, with its kind, or "". Separators that
// may sit inside a written number (space . - ( ) + : _ /) are skipped, so that
// "+33 6 12 34 56 78" is seen as 33612345678. One pass, no regular expression: the scan
// reads every message, row and log line of the run (under -race too).
func (c *clearIDs) find(text string) string {
	if found := c.scan(text); found != "" {
		return found
	}
	if strings.Contains(text, `\u`) {
		// JSON-escaped digits (\u0033) are digits once decoded.
		return c.scan(unescapeU(text))
	}
	return ""
}

// unescapeU decodes the \uXXXX escapes of text (anything else is kept as it is).
func unescapeU(text string) string {
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == '\\' && i+5 < len(text) && text[i+1] == 'u' {
			if v, err := strconv.ParseUint(text[i+2:i+6], 16, 32); err == nil {
				b.WriteRune(rune(v))
				i += 5
				continue
			}
		}
		b.WriteByte(text[i])
	}
	return b.String()
}

func (c *clearIDs) scan(text string) string {
	run := make([]byte, 0, 64)
	check := func() string {
		if len(run) < 9 {
			return ""
		}
		r := string(run)
		for _, n := range idLengths {
			for i := 0; i+n <= len(r); i++ {
				if kind, ok := c.ids[r[i:i+n]]; ok {
					return fmt.Sprintf("%s %s…", kind, r[i:i+min(n, 4)])
				}
			}
		}
		return ""
	}
	for i := 0; i < len(text); i++ {
		switch b := text[i]; {
		case b >= '0' && b <= '9':
			run = append(run, b)
		case b == ' ' || b == '.' || b == '-' || b == '(' || b == ')' || b == '+' || b == ':' || b == '_' || b == '/':
			// inside or before a number: keep the run going
		default:
			if found := check(); found != "" {
				return found
			}
			run = run[:0]
		}
	}
	return check()
}
