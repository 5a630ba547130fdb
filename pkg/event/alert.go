package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Alert is one version of a correlation finding, as the correlator writes it to alerts.v1
// (schemas/events/alert.v1.schema.json) and to the ClickHouse alerts table (schemas/clickhouse
// 0003_alerts.sql). A finding keeps its ID while later evaluations extend it; each extension
// is written as a new Version. All times are event times (millisecond precision, as the
// events'), so replaying the same input produces the same alerts, byte for byte.
//
// On TopicAlerts the message key is ID, so that the versions of one finding stay in order
// on one partition. The fields are time.Time for the correlator's arithmetic; on the wire they are the
// contract's timestamps (TimeLayout): EncodeAlert and MarshalJSON write them so.
type Alert struct {
	ID              string    `json:"alert_id"`
	Rule            string    `json:"rule"`
	Severity        string    `json:"severity"`
	GroupKey        string    `json:"group_key"`
	Facilities      []string  `json:"facilities"`
	FirstEvidenceAt time.Time `json:"first_evidence_at"`
	LastEvidenceAt  time.Time `json:"last_evidence_at"`
	WindowStart     time.Time `json:"window_start"`
	WindowEnd       time.Time `json:"window_end"`
	EvidenceIDs     []string  `json:"evidence_event_ids"`
	EvidenceCount   uint32    `json:"evidence_count"`
	Explanation     string    `json:"explanation"`
	// CreatedAt is the event time at which the finding was first raised; it never changes
	// (ClickHouse partitions alerts by it). UpdatedAt is the event time of this version.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   uint64    `json:"version"`
}

// AlertColumns are the columns of the ClickHouse alerts table that hold an Alert, in field
// order (schemas/clickhouse 0003_alerts.sql; the table adds judicial_hold).
const AlertColumns = "alert_id, rule, severity, group_key, facilities, first_evidence_at, last_evidence_at, " +
	"window_start, window_end, evidence_event_ids, evidence_count, explanation, created_at, updated_at, version"

// alertJSON is Alert as the contract spells it: timestamps in TimeLayout.
type alertJSON struct {
	ID              string   `json:"alert_id"`
	Rule            string   `json:"rule"`
	Severity        string   `json:"severity"`
	GroupKey        string   `json:"group_key"`
	Facilities      []string `json:"facilities"`
	FirstEvidenceAt Time     `json:"first_evidence_at"`
	LastEvidenceAt  Time     `json:"last_evidence_at"`
	WindowStart     Time     `json:"window_start"`
	WindowEnd       Time     `json:"window_end"`
	EvidenceIDs     []string `json:"evidence_event_ids"`
	EvidenceCount   uint32   `json:"evidence_count"`
	Explanation     string   `json:"explanation"`
	CreatedAt       Time     `json:"created_at"`
	UpdatedAt       Time     `json:"updated_at"`
	Version         uint64   `json:"version"`
}

// EncodeAlert returns the JSON of a (alerts.v1): timestamps in TimeLayout, empty lists as
// [] (never null).
func EncodeAlert(a *Alert) ([]byte, error) {
	j := alertJSON{
		ID: a.ID, Rule: a.Rule, Severity: a.Severity, GroupKey: a.GroupKey, Facilities: nonNil(a.Facilities),
		FirstEvidenceAt: NewTime(a.FirstEvidenceAt), LastEvidenceAt: NewTime(a.LastEvidenceAt),
		WindowStart: NewTime(a.WindowStart), WindowEnd: NewTime(a.WindowEnd),
		EvidenceIDs: nonNil(a.EvidenceIDs), EvidenceCount: a.EvidenceCount, Explanation: a.Explanation,
		CreatedAt: NewTime(a.CreatedAt), UpdatedAt: NewTime(a.UpdatedAt), Version: a.Version,
	}
	b, err := json.Marshal(&j)
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	return b, nil
}

// MarshalJSON is EncodeAlert, so that an Alert marshals the same way wherever it is.
func (a Alert) MarshalJSON() ([]byte, error) { return EncodeAlert(&a) }

// DecodeAlert decodes an alert of alerts.v1 and checks the fields its schema requires.
func DecodeAlert(data []byte, a *Alert) error {
	// Timestamps are read as strings first so that a bad one is named.
	var j struct {
		alertJSON
		FirstEvidenceAt string `json:"first_evidence_at"`
		LastEvidenceAt  string `json:"last_evidence_at"`
		WindowStart     string `json:"window_start"`
		WindowEnd       string `json:"window_end"`
		CreatedAt       string `json:"created_at"`
		UpdatedAt       string `json:"updated_at"`
	}
	if err := unmarshal(data, &j); err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	*a = Alert{
		ID: j.ID, Rule: j.Rule, Severity: j.Severity, GroupKey: j.GroupKey, Facilities: j.Facilities,
		EvidenceIDs: j.EvidenceIDs, EvidenceCount: j.EvidenceCount, Explanation: j.Explanation, Version: j.Version,
	}
	for _, f := range []struct {
		name, value string
		to          *time.Time
	}{
		{"first_evidence_at", j.FirstEvidenceAt, &a.FirstEvidenceAt}, {"last_evidence_at", j.LastEvidenceAt, &a.LastEvidenceAt},
		{"window_start", j.WindowStart, &a.WindowStart}, {"window_end", j.WindowEnd, &a.WindowEnd},
		{"created_at", j.CreatedAt, &a.CreatedAt}, {"updated_at", j.UpdatedAt, &a.UpdatedAt},
	} {
		var t Time
		if err := parseField(f.name, f.value, &t); err != nil {
			return fmt.Errorf("alert: %w", err)
		}
		*f.to = t.Time
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"alert_id", a.ID == ""}, {"rule", a.Rule == ""},
		{"first_evidence_at", a.FirstEvidenceAt.IsZero()}, {"last_evidence_at", a.LastEvidenceAt.IsZero()},
		{"window_start", a.WindowStart.IsZero()}, {"window_end", a.WindowEnd.IsZero()},
		{"created_at", a.CreatedAt.IsZero()}, {"updated_at", a.UpdatedAt.IsZero()},
	} {
		if f.missing {
			return fmt.Errorf("alert: %s: %w", f.name, ErrMissingField)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mergeSorted adds the values of b missing from a (a sorted, without duplicates) and returns
// the sorted union, at most limit long when limit > 0, and whether a grew.
func mergeSorted(a, b []string, limit int) ([]string, bool) {
	out := a
	grew := false
	for _, v := range b {
		if limit > 0 && len(out) >= limit {
			break
		}
		i, found := slices.BinarySearch(out, v)
		if found {
			continue
		}
		if !grew {
			out = slices.Clone(out)
			grew = true
		}
		out = slices.Insert(out, i, v)
	}
	return out, grew
}

// Extend merges a later finding of the same group into a, keeping a's identity (ID,
// CreatedAt), and reports whether the finding grew: more facilities or a larger evidence
// count. New evidence ids alone (one more sighting of the same pattern) are merged, up to
// maxEvidence, without counting as growth.
func (a *Alert) Extend(later *Alert, maxEvidence int) (grew bool) {
	var g1 bool
	a.Facilities, g1 = mergeSorted(a.Facilities, later.Facilities, 0)
	a.EvidenceIDs, _ = mergeSorted(a.EvidenceIDs, later.EvidenceIDs, maxEvidence)
	if later.FirstEvidenceAt.Before(a.FirstEvidenceAt) {
		a.FirstEvidenceAt = later.FirstEvidenceAt
	}
	if later.LastEvidenceAt.After(a.LastEvidenceAt) {
		a.LastEvidenceAt = later.LastEvidenceAt
	}
	if later.WindowStart.Before(a.WindowStart) {
		a.WindowStart = later.WindowStart
	}
	if later.WindowEnd.After(a.WindowEnd) {
		a.WindowEnd = later.WindowEnd
	}
	grewCount := later.EvidenceCount > a.EvidenceCount
	a.EvidenceCount = max(a.EvidenceCount, later.EvidenceCount)
	a.Explanation = later.Explanation
	if later.UpdatedAt.After(a.UpdatedAt) {
		a.UpdatedAt = later.UpdatedAt
	}
	return g1 || grewCount
}

// AlertID derives a finding's id from its rule, group key and the event time it was first raised:
// the same finding found again (after a restart, on replay) gets the same id. `vigiectl keys
// forward` derives it again when a rotation maps the group key.
func AlertID(rule, groupKey string, raisedAt time.Time) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(groupKey))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, raisedAt.UnixMilli(), 10))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
