package rules

import (
	"strconv"
	"strings"
	"time"
)

// Explain fills the rule's explanation template ({name} placeholders) with vals; unknown
// placeholders are left as they are. Without a template it says the rule's title and group.
// The streaming engine and the scheduler both explain their findings with it.
func (r *Rule) Explain(vals map[string]string) string {
	tmpl := r.Explanation
	if tmpl == "" {
		tmpl = r.Title + ": {group_key} at {facilities}"
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			b.WriteString(tmpl)
			break
		}
		name := tmpl[i+1 : i+j]
		b.WriteString(tmpl[:i])
		if v, ok := vals[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(tmpl[i : i+j+1])
		}
		tmpl = tmpl[i+j+1:]
	}
	return b.String()
}

// FormatGap writes the time between two events for an explanation: 1.5d, 3.2h, 25m.
func FormatGap(d time.Duration) string {
	switch {
	case d >= Day:
		return strconv.FormatFloat(d.Hours()/24, 'f', 1, 64) + "d"
	case d >= time.Hour:
		return strconv.FormatFloat(d.Hours(), 'f', 1, 64) + "h"
	default:
		return strconv.FormatFloat(d.Minutes(), 'f', 0, 64) + "m"
	}
}
