// Package rulequality measures correlation rules against what a simulation planted: the
// findings a rule raised on a background (false positives), the planted patterns it found and
// how late, against the delay the rule promises, and the near-miss decoys it kept quiet on.
// The simulator's end-to-end rule-quality test and `vigiectl rules test -truth` both score
// with it, so that one table means the same wherever it is printed.
//
// Findings are matched to what was planted by facts only — the rule, the facilities, the
// model (TAC) and serial block, and time — never by an identifier: the planted summary the
// simulator writes holds no clear identifier, and a finding's group key is a pseudonym for
// device rules.
package rulequality

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigie/vigie/pkg/event"
)

// Planted is one planted fact: a pattern its rule must report (a plant) or a near miss it
// must stay quiet on (a decoy). Its JSON is an entry of the simulator's planted summary.
type Planted struct {
	Scenario string `json:"scenario"`
	// Rule is the rule that must report it (a plant) or stay quiet (a decoy).
	Rule string `json:"rule"`
	// Facilities involved, in order of first involvement.
	Facilities []string `json:"facilities"`
	// TACs and SerialPrefixes of the planted phones (models and serial blocks, not personal:
	// the simulator's own phones).
	TACs           []string `json:"tacs,omitempty"`
	SerialPrefixes []string `json:"serial_prefixes,omitempty"`
	// SerialBlocks are the planted blocks as the pipeline stores them, keyed ids (Truth.
	// KeyBlocks); a finding grouped by a block is matched against them when they are set,
	// else against SerialPrefixes (data that names blocks as they are, as the correlator's
	// scenario tests do).
	SerialBlocks []string `json:"serial_blocks,omitempty"`
	// Since is the event time of the pattern's first event (zero: At), At when it becomes
	// true (a decoy: when the near miss is complete).
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
	// Delay is the longest the rule promises to take, in event time after At, to report a
	// plant (0: on the event that makes it true); History the history of the data the rule
	// needs before At: a plant planted earlier must stay unreported, the rule warming up.
	Delay   Duration `json:"delay"`
	History Duration `json:"history"`
	Summary string   `json:"summary,omitempty"`
}

// Truth is what a simulation planted over [Start, End): the simulator's planted summary
// (`simulator run -summary_file`), whose findings are the plants.
type Truth struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Plants []Planted `json:"findings"`
	Decoys []Planted `json:"decoys"`
}

// KeyBlocks returns t with the serial blocks of every plant and decoy as the pipeline's ids:
// id of each of its TACs followed by each of its serial prefixes (the block key's
// pseudonym.Pseudonymizer.BlockID, which only the key holder can compute).
func (t Truth) KeyBlocks(id func(tacAndPrefix string) string) Truth {
	key := func(ps []Planted) []Planted {
		out := slices.Clone(ps)
		for i := range out {
			out[i].SerialBlocks = nil
			for _, tac := range out[i].TACs {
				for _, prefix := range out[i].SerialPrefixes {
					out[i].SerialBlocks = append(out[i].SerialBlocks, id(tac+prefix))
				}
			}
		}
		return out
	}
	t.Plants, t.Decoys = key(t.Plants), key(t.Decoys)
	return t
}

// warmingUp reports whether p was planted before the data held the history its rule needs.
func (t Truth) warmingUp(p Planted) bool { return p.At.Before(t.Start.Add(time.Duration(p.History))) }

// Duration is a time.Duration written in JSON as Go's duration text ("26h0m0s"); a number
// is read as nanoseconds (encoding/json's form of time.Duration).
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads text ("26h", "90m") or nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: not a duration text or a number of nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

// ReadTruth reads the simulator's planted summary (`simulator run -summary_file`): its
// start and end, its plants (findings) and decoys.
func ReadTruth(path string) (Truth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Truth{}, fmt.Errorf("read planted summary: %w", err)
	}
	return ParseTruth(data)
}

// ParseTruth decodes a planted summary. A summary without plants or decoys is an error: it
// is not a planted summary, or the run planted nothing to score against.
func ParseTruth(data []byte) (Truth, error) {
	var t Truth
	if err := json.Unmarshal(data, &t); err != nil {
		return Truth{}, fmt.Errorf("planted summary: %w", err)
	}
	if t.Start.IsZero() || t.End.IsZero() || !t.End.After(t.Start) {
		return Truth{}, errors.New("planted summary: start and end must be set, end after start")
	}
	for i, p := range append(slices.Clone(t.Plants), t.Decoys...) {
		switch {
		case p.Rule == "":
			return Truth{}, fmt.Errorf("planted summary: entry %d (%s): rule is empty", i, p.Scenario)
		case p.At.IsZero():
			return Truth{}, fmt.Errorf("planted summary: entry %d (%s, %s): at is empty", i, p.Scenario, p.Rule)
		case len(p.Facilities) == 0 && len(p.TACs) == 0:
			return Truth{}, fmt.Errorf("planted summary: entry %d (%s, %s): neither facilities nor tacs to match findings by", i, p.Scenario, p.Rule)
		}
	}
	return t, nil
}

// tolerance is how far before a plant's first event a finding's evidence may end and still
// be about it (the generator's times are those of its events; this absorbs rounding).
const tolerance = time.Hour

// reach is how long after a plant's promised delay a finding is still about it (found
// late rather than not at all).
const reach = 24 * time.Hour

// Matches reports whether finding f is about the planted fact p, by facts: the same rule;
// for a finding grouped by a model (its group key holds p's TAC, and p's serial block when
// the key holds one) the model is enough, otherwise the finding's facilities (its group key
// counting as one) share at least two of p's (one, when either lists one); and its evidence
// reaches p's time: it ends no earlier than an hour before p's first event and begins no
// later than a day after p's promised delay.
func Matches(f event.Alert, p Planted) bool {
	return f.Rule == p.Rule && matchesTime(f, p) && matchesFacts(f, p)
}

// matchesFacts is Matches without time: the model, or the facilities.
func matchesFacts(f event.Alert, p Planted) bool {
	if tac, block, ok := keyModel(f.GroupKey); ok {
		if len(p.TACs) == 0 {
			return false
		}
		blocks := p.SerialBlocks
		if len(blocks) == 0 {
			blocks = p.SerialPrefixes
		}
		return slices.Contains(p.TACs, tac) && (block == "" || len(blocks) == 0 || slices.Contains(blocks, block))
	}
	facs := f.Facilities
	if !slices.Contains(facs, f.GroupKey) && slices.Contains(p.Facilities, f.GroupKey) {
		facs = append(slices.Clone(facs), f.GroupKey)
	}
	need := min(2, len(p.Facilities), len(facs))
	if need == 0 {
		return false
	}
	have := 0
	for _, fac := range p.Facilities {
		if slices.Contains(facs, fac) {
			have++
		}
	}
	return have >= need
}

func matchesTime(f event.Alert, p Planted) bool {
	return !f.LastEvidenceAt.Before(since(p).Add(-tolerance)) && !f.FirstEvidenceAt.After(p.At.Add(time.Duration(p.Delay)+reach))
}

// since is p's first event (At when unknown).
func since(p Planted) time.Time {
	if p.Since.IsZero() || p.Since.After(p.At) {
		return p.At
	}
	return p.Since
}

// keyModel reads the model a group key names: a key that is a TAC (8 digits), or holds
// tac=<TAC> (and serial_block=<block>) among its field=value pairs.
func keyModel(key string) (tac, block string, ok bool) {
	if isTAC(key) {
		return key, "", true
	}
	if !strings.Contains(key, "=") {
		return "", "", false
	}
	for _, kv := range strings.Split(key, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "tac":
			tac = v
		case "serial_block":
			block = v
		}
	}
	return tac, block, isTAC(tac)
}

func isTAC(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Row is one rule's score.
type Row struct {
	Rule string
	// Findings raised in the run, and those about no plant (false positives; a finding
	// about a decoy, or about a plant while the rule warms up, is one; a later episode of a
	// plant's finding is not).
	Findings, Unmatched int
	// Plants of the rule, found at all, and found within their promised delay.
	Plants, Found, InTime int
	// MaxDelay is the longest delay of a found plant (event time from At to the first
	// finding about it), Promised the longest promised delay of the rule's plants.
	MaxDelay, Promised time.Duration
	// Decoys of the rule, and those it kept quiet on.
	Decoys, Quiet int
	// Early plants were planted before the data held the history the rule needs (it must
	// stay quiet on them, warming up), EarlyQuiet those it kept quiet on.
	Early, EarlyQuiet int
	// Misses say, in plain words, each plant not found in time and each decoy not quiet.
	Misses []string
}

// Report is the score of one run.
type Report struct {
	Rows []Row
	// Findings and Matched count over every rule; Precision is Matched / Findings (1 with
	// no finding at all).
	Findings, Matched int
	Precision         float64
}

// Row returns the row of rule (zero when the rule is not in the report).
func (r *Report) Row(rule string) Row {
	for _, row := range r.Rows {
		if row.Rule == rule {
			return row
		}
	}
	return Row{Rule: rule}
}

// Score scores findings (the latest version of each; one per finding id) against truth.
// rules lists the rules evaluated, each a row even without anything to say; rules of the
// findings or of truth not in it get rows too, after them.
func Score(rules []string, truth Truth, findings []event.Alert) Report {
	order := slices.Clone(rules)
	add := func(rule string) {
		if !slices.Contains(order, rule) {
			order = append(order, rule)
		}
	}
	for _, p := range truth.Plants {
		add(p.Rule)
	}
	for _, p := range truth.Decoys {
		add(p.Rule)
	}
	for _, f := range findings {
		add(f.Rule)
	}
	rows := map[string]*Row{}
	for _, rule := range order {
		rows[rule] = &Row{Rule: rule}
	}
	var rep Report
	// A finding that Matches a plant is about it; so is a later episode of it: a finding of
	// the same rule and group key (the same device, model or place, pseudonymous) that
	// matches the plant's facts after its first event (a cloned IMEI used again days later
	// is found again, a new finding once the first's window has passed).
	type episode struct{ rule, key string }
	planted := map[episode][]int{} // the plants a finding matched, by its rule and key
	for _, f := range findings {
		for i, p := range truth.Plants {
			if !truth.warmingUp(p) && Matches(f, p) {
				planted[episode{f.Rule, f.GroupKey}] = append(planted[episode{f.Rule, f.GroupKey}], i)
			}
		}
	}
	for _, f := range findings {
		row := rows[f.Rule]
		row.Findings++
		rep.Findings++
		about := false
		for _, i := range planted[episode{f.Rule, f.GroupKey}] {
			p := truth.Plants[i]
			about = about || Matches(f, p) || matchesFacts(f, p) && !f.LastEvidenceAt.Before(since(p).Add(-tolerance))
		}
		if about {
			rep.Matched++
		} else {
			row.Unmatched++
		}
	}
	for _, p := range truth.Plants {
		row := rows[p.Rule]
		if truth.warmingUp(p) {
			row.Early++
			if _, found := firstAbout(findings, p); found {
				row.Misses = append(row.Misses, "reported while warming up (planted before the history the rule needs): "+describe(p))
				continue
			}
			row.EarlyQuiet++
			continue
		}
		row.Plants++
		row.Promised = max(row.Promised, time.Duration(p.Delay))
		first, found := firstAbout(findings, p)
		if !found {
			row.Misses = append(row.Misses, "not found: "+describe(p))
			continue
		}
		row.Found++
		delay := max(0, first.Sub(p.At))
		row.MaxDelay = max(row.MaxDelay, delay)
		if delay <= time.Duration(p.Delay) {
			row.InTime++
		} else {
			row.Misses = append(row.Misses, fmt.Sprintf("found %s after it became true, promised %s: %s", formatDuration(delay), formatDuration(time.Duration(p.Delay)), describe(p)))
		}
	}
	for _, p := range truth.Decoys {
		row := rows[p.Rule]
		row.Decoys++
		if _, found := firstAbout(findings, p); found {
			row.Misses = append(row.Misses, "decoy not quiet: "+describe(p))
			continue
		}
		row.Quiet++
	}
	for _, rule := range order {
		rep.Rows = append(rep.Rows, *rows[rule])
	}
	rep.Precision = 1
	if rep.Findings > 0 {
		rep.Precision = float64(rep.Matched) / float64(rep.Findings)
	}
	return rep
}

// firstAbout returns when the first finding about p was raised.
func firstAbout(findings []event.Alert, p Planted) (time.Time, bool) {
	var first time.Time
	found := false
	for _, f := range findings {
		if Matches(f, p) && (!found || f.CreatedAt.Before(first)) {
			first, found = f.CreatedAt, true
		}
	}
	return first, found
}

func describe(p Planted) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s at %s", p.Scenario, p.Rule, p.At.UTC().Format(time.RFC3339))
	if len(p.TACs) > 0 {
		fmt.Fprintf(&b, ", TAC %s", strings.Join(p.TACs, "/"))
	}
	if len(p.SerialPrefixes) > 0 {
		fmt.Fprintf(&b, ", blocks %s", strings.Join(p.SerialPrefixes, "/"))
	}
	if n := len(p.Facilities); n > 0 {
		fmt.Fprintf(&b, ", %s", strings.Join(p.Facilities[:min(n, 4)], ", "))
		if n > 4 {
			fmt.Fprintf(&b, " and %d more", n-4)
		}
	}
	if p.Summary != "" {
		fmt.Fprintf(&b, " (%s)", p.Summary)
	}
	return b.String()
}

// formatDuration writes whole days as "2d", else Go's form rounded to the minute.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Column is a column a caller adds before the score's own (what the background alone
// raised, the history a rule needs): its header and its value for a rule.
type Column struct {
	Header string
	Value  func(rule string) string
}

// WriteTable writes the report as a Markdown table, one row per rule (the columns of extra
// first), then the precision of all findings and each plant missed or late and each decoy
// not quiet.
func (r *Report) WriteTable(w io.Writer, extra ...Column) error {
	headers := []string{"rule"}
	for _, c := range extra {
		headers = append(headers, c.Header)
	}
	headers = append(headers, "findings", "unmatched", "plants found", "in time", "max delay / promised", "decoys quiet", "warming up quiet")
	lines := [][]string{headers, nil}
	for _, row := range r.Rows {
		cells := []string{row.Rule}
		for _, c := range extra {
			cells = append(cells, c.Value(row.Rule))
		}
		delay := "–"
		if row.Plants > 0 {
			delay = formatDuration(row.MaxDelay) + " / " + formatDuration(row.Promised)
			if row.Found == 0 {
				delay = "– / " + formatDuration(row.Promised)
			}
		}
		cells = append(cells, strconv.Itoa(row.Findings), strconv.Itoa(row.Unmatched),
			fraction(row.Found, row.Plants), fraction(row.InTime, row.Plants), delay, fraction(row.Quiet, row.Decoys), fraction(row.EarlyQuiet, row.Early))
		lines = append(lines, cells)
	}
	widths := make([]int, len(headers))
	for _, l := range lines {
		for i, c := range l {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		bw.WriteString("|")
		for i := range headers {
			if l == nil {
				bw.WriteString(" " + strings.Repeat("-", widths[i]) + " |")
				continue
			}
			fmt.Fprintf(bw, " %s%s |", l[i], strings.Repeat(" ", widths[i]-utf8.RuneCountInString(l[i])))
		}
		bw.WriteString("\n")
	}
	fmt.Fprintf(bw, "\nprecision of all findings: %s (%d of %d about a plant)\n", r.PrecisionText(), r.Matched, r.Findings)
	for _, row := range r.Rows {
		for _, m := range row.Misses {
			fmt.Fprintf(bw, "- %s: %s\n", row.Rule, m)
		}
	}
	return bw.Flush()
}

// PrecisionText is the precision with two decimals, or "n/a" without any finding.
func (r *Report) PrecisionText() string {
	if r.Findings == 0 {
		return "n/a"
	}
	return strconv.FormatFloat(r.Precision, 'f', 2, 64)
}

// fraction writes "n / of", or "–" when there is nothing to count.
func fraction(n, of int) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%d / %d", n, of)
}
