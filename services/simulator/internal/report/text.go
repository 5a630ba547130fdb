package report

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// TACReach is how far one phone model spread, from the detections.
type TACReach struct {
	TAC          string
	Manufacturer string
	Model        string
	Mini         bool
	Facilities   uint64
	Devices      uint64
	FirstSeen    time.Time
	FirstAt      string
}

// Reach measures a TAC's spread over the run's detections.
func (p *Pipeline) Reach(ctx context.Context, runID, tac string) (TACReach, error) {
	r := TACReach{TAC: tac}
	q := `SELECT uniqExact(facility_id), uniqExactIf(imei_pseudo, imei_pseudo != ''), min(observed_at),
	             argMin(facility_id, observed_at), any(manufacturer), any(model), max(ifNull(mini_phone, false))
	      FROM ` + p.table("detections") + ` WHERE tac = ? AND startsWith(event_id, ?)`
	if err := p.Conn.QueryRow(ctx, q, tac, runID+"-").Scan(&r.Facilities, &r.Devices, &r.FirstSeen, &r.FirstAt, &r.Manufacturer, &r.Model, &r.Mini); err != nil {
		return r, fmt.Errorf("reach of tac %s: %w", tac, err)
	}
	return r, nil
}

// Words says a reach in plain words.
func (r TACReach) Words() string {
	model := "unknown model"
	if r.Manufacturer != "" {
		model = strings.TrimSpace(r.Manufacturer + " " + r.Model)
	}
	if r.Mini {
		model += ", mini phone"
	}
	return fmt.Sprintf("TAC %s (%s) reached %d facilities on %s devices since %s (first at %s)",
		r.TAC, model, r.Facilities, thousands(int64(r.Devices)), r.FirstSeen.UTC().Format("2006-01-02 15:04"), r.FirstAt)
}

// RuleCounts counts alerts by rule, sorted by rule.
func RuleCounts(alerts []Alert) [][2]string {
	m := map[string]int{}
	for _, a := range alerts {
		m[a.Rule]++
	}
	var out [][2]string
	for r, n := range m {
		out = append(out, [2]string{r, fmt.Sprint(n)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// TopTACs returns the group keys of the TAC_SPREAD alerts, most facilities first.
func TopTACs(alerts []Alert, n int) []string {
	best := map[string]int{}
	for _, a := range alerts {
		if a.Rule == "TAC_SPREAD" && len(a.Facilities) > best[a.GroupKey] {
			best[a.GroupKey] = len(a.Facilities)
		}
	}
	var tacs []string
	for t := range best {
		tacs = append(tacs, t)
	}
	sort.Slice(tacs, func(i, j int) bool {
		if best[tacs[i]] != best[tacs[j]] {
			return best[tacs[i]] > best[tacs[j]]
		}
		return tacs[i] < tacs[j]
	})
	if len(tacs) > n {
		tacs = tacs[:n]
	}
	return tacs
}

// Examples returns, for each rule but TAC_SPREAD, the explanation of its alert with the
// most evidence.
func Examples(alerts []Alert) []string {
	best := map[string]Alert{}
	for _, a := range alerts {
		if b, ok := best[a.Rule]; !ok || a.EvidenceCount > b.EvidenceCount || (a.EvidenceCount == b.EvidenceCount && len(a.Facilities) > len(b.Facilities)) {
			best[a.Rule] = a
		}
	}
	var out []string
	for r, a := range best {
		if r == "TAC_SPREAD" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s): %s", r, a.Severity, a.Explanation))
	}
	slices.Sort(out)
	return out
}

// thousands writes n with thin separators: 1,234,567.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Thousands is thousands for callers outside the package.
func Thousands(n int64) string { return thousands(n) }

// Table writes rows as aligned columns, indented.
func Table(w io.Writer, indent string, rows [][]string) {
	widths := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			pad := widths[i] - len([]rune(c))
			if i > 0 && strings.IndexFunc(c, func(r rune) bool { return r < '0' || r > '9' && r != ',' }) < 0 {
				b.WriteString(strings.Repeat(" ", pad) + c) // numbers right-aligned
			} else {
				b.WriteString(c + strings.Repeat(" ", pad))
			}
			b.WriteString("  ")
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
