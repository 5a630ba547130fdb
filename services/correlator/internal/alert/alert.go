// Package alert is the correlator's output: one finding of a rule, with its evidence, as
// written to the alerts.v1 topic and the ClickHouse alerts table (schemas/clickhouse
// 0003_alerts.sql), and the sinks that write it.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"
)

// Topic is the Kafka topic of alerts, keyed by alert id so that the versions of one finding
// stay in order on one partition.
const Topic = "alerts.v1"

// Alert is one version of a finding. A finding keeps its ID while later evaluations extend
// it; each extension is written as a new Version. All times are event times, so replaying the
// same input produces the same alerts, byte for byte.
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

// ID derives a finding's id from its rule, group key and the event time it was first raised:
// the same finding found again (after a restart, on replay) gets the same id.
func ID(rule, groupKey string, raisedAt time.Time) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(groupKey))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, raisedAt.UnixMilli(), 10))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// MergeSorted adds the values of b missing from a (a sorted, without duplicates) and returns
// the sorted union, at most limit long when limit > 0, and whether a grew.
func MergeSorted(a, b []string, limit int) ([]string, bool) {
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
	a.Facilities, g1 = MergeSorted(a.Facilities, later.Facilities, 0)
	a.EvidenceIDs, _ = MergeSorted(a.EvidenceIDs, later.EvidenceIDs, maxEvidence)
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
