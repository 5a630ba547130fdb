package prometheus

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/prometheus/common/model"
)

// evalInterval is prometheus.yml's evaluation_interval.
const evalInterval = 15 * time.Second

// firing loads series (promqltest's load syntax, one sample a minute from time 0), evaluates
// every group of the rule file every 15 s up to at, as Prometheus's rules manager does
// (recording rules written back, alert states carried from one evaluation to the next), and
// returns the alerts firing at that moment by name, with their labels and annotations. Only
// the group that holds alert is evaluated (its recording rules are in it too).
func firing(t *testing.T, series string, at time.Duration, alert string) map[string][]*rules.Alert {
	t.Helper()
	suite, err := promqltest.NewLazyLoader("load 1m\n"+series, promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, suite.Close()) }()
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:  rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		Appendable: suite.Storage(),
		Context:    context.Background(),
		NotifyFunc: func(context.Context, string, ...*rules.Alert) {},
		Logger:     slog.New(slog.DiscardHandler),
		Parser:     promParser,
	})
	groupsMap, errs := m.LoadGroups(evalInterval, labels.EmptyLabels(), "", nil, false, rulesFile)
	require.Empty(t, errs)
	// In the file's order: a recording rule before the alerts that read it.
	rgs, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	var groups []*rules.Group
	for _, g := range rgs.Groups {
		if slices.ContainsFunc(g.Rules, func(r rulefmt.Rule) bool { return r.Alert == alert }) {
			groups = append(groups, groupsMap[rules.GroupKey(rulesFile, g.Name)])
		}
	}
	require.Len(t, groups, 1, "the group of %s", alert)
	for _, g := range groups {
		require.NotNil(t, g)
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true)
			}
		}
	}
	start := time.Unix(0, 0).UTC()
	for ts := start; !ts.After(start.Add(at)); ts = ts.Add(evalInterval) {
		suite.WithSamplesTill(ts, func(err error) {
			require.NoError(t, err)
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					require.NoError(t, r.LastError(), "rule %s at %s", r.Name(), ts.Sub(start))
				}
			}
		})
	}
	out := map[string][]*rules.Alert{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					out[ar.Name()] = append(out[ar.Name()], a)
				}
			}
		}
	}
	return out
}

// alertCase is one alert on one set of series: it fires at `at` with these labels, or not.
type alertCase struct {
	name   string
	alert  string
	series string
	at     time.Duration
	fires  bool
	labels map[string]string // labels the firing alert carries
}

const (
	writer     = `job="vigie-writer",instance="writer-0:9090"`
	ingest     = `job="vigie-ingest",instance="ingest-0:9090"`
	enricher   = `job="vigie-enricher",instance="enricher-0:9090"`
	correlator = `job="vigie-correlator",instance="correlator-0:9090"`
	writerLag  = `group="vigie-writer",topic="detections.enriched.v1"`
)

var alertCases = []alertCase{
	{"down 8 minutes", "VigieServiceDown", `up{` + writer + `} 1x5 0x10`, 14 * time.Minute, true, map[string]string{"job": "vigie-writer", "severity": "page"}},
	{"down 1 minute, under its for", "VigieServiceDown", `up{` + writer + `} 1x5 0x10`, 7 * time.Minute, false, nil},
	{"up", "VigieServiceDown", `up{` + writer + `} 1x15`, 14 * time.Minute, false, nil},

	{"no correlator target", "VigieServiceAbsent", `up{` + writer + `} 1x15
		up{` + ingest + `} 1x15
		up{` + enricher + `} 1x15`, 10 * time.Minute, true, nil},
	{"every service scraped", "VigieServiceAbsent", `up{` + writer + `} 1x15
		up{` + ingest + `} 1x15
		up{` + enricher + `} 1x15
		up{` + correlator + `} 1x15`, 10 * time.Minute, false, nil},

	{"not ready 9 minutes", "VigieNotReady", `vigie_ready{` + writer + `} 1x5 0x20`, 15 * time.Minute, true, map[string]string{"instance": "writer-0:9090"}},
	{"not ready 3 minutes (a restart)", "VigieNotReady", `vigie_ready{` + writer + `} 1x5 0x3 1x10`, 9 * time.Minute, false, nil},
	{"ready", "VigieNotReady", `vigie_ready{` + writer + `} 1x20`, 15 * time.Minute, false, nil},

	{"two builds for 45 minutes", "VigieBuildMismatch", `vigie_build_info{` + writer + `,version="1.0",revision="aaa",go_version="go1.26"} 1x60
		vigie_build_info{job="vigie-writer",instance="writer-1:9090",version="1.1",revision="bbb",go_version="go1.26"} 1x60`, 45 * time.Minute, true, map[string]string{"job": "vigie-writer"}},
	{"two builds for 20 minutes (a rollout)", "VigieBuildMismatch", `vigie_build_info{` + writer + `,version="1.0",revision="aaa",go_version="go1.26"} 1x60
		vigie_build_info{job="vigie-writer",instance="writer-1:9090",version="1.1",revision="bbb",go_version="go1.26"} 1x60`, 20 * time.Minute, false, nil},
	{"one build", "VigieBuildMismatch", `vigie_build_info{` + writer + `,version="1.0",revision="aaa",go_version="go1.26"} 1x60
		vigie_build_info{job="vigie-writer",instance="writer-1:9090",version="1.0",revision="aaa",go_version="go1.26"} 1x60`, 45 * time.Minute, false, nil},

	{"a refused rules reload", "VigieReloadFailed", `vigie_correlator_reloads_total{` + correlator + `,hook="rules",result="error"} 0x5 1x20`, 10 * time.Minute, true, nil},
	{"reloads that worked", "VigieReloadFailed", `vigie_correlator_reloads_total{` + correlator + `,hook="rules",result="ok"} 0x5 1x20`, 10 * time.Minute, false, nil},

	{"600,000 behind", "VigieConsumerLagHigh", `vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 300000x30
		vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="1"} 300000x30`, 15 * time.Minute, true, map[string]string{"group": "vigie-writer", "topic": "detections.enriched.v1"}},
	{"400,000 behind", "VigieConsumerLagHigh", `vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 300000x30
		vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="1"} 100000x30`, 15 * time.Minute, false, nil},

	{"lag growing for an hour", "VigieConsumerLagGrowing", `vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 60000+1000x60`, 55 * time.Minute, true, nil},
	{"lag high but steady", "VigieConsumerLagGrowing", `vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 60000x60`, 55 * time.Minute, false, nil},

	{"a retry a second", "VigieConsumerRetrying", `vigie_kafka_consumer_retries_total{` + writer + `,` + writerLag + `,op="handle"} 0+60x30`, 20 * time.Minute, true, nil},
	{"a retry every 10 s", "VigieConsumerRetrying", `vigie_kafka_consumer_retries_total{` + writer + `,` + writerLag + `,op="handle"} 0+6x30`, 20 * time.Minute, false, nil},

	{"nothing handled, messages waiting", "VigieConsumerStalled", `vigie_kafka_consumer_messages_total{` + writer + `,` + writerLag + `} 1000x40
		vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 500x40`, 30 * time.Minute, true, nil},
	{"handling", "VigieConsumerStalled", `vigie_kafka_consumer_messages_total{` + writer + `,` + writerLag + `} 0+600x40
		vigie_kafka_consumer_lag_messages{` + writer + `,` + writerLag + `,partition="0"} 500x40`, 30 * time.Minute, false, nil},

	{"9 % rejected", "VigieIngestRejectingEvents", `vigie_ingest_events_rejected_total{` + ingest + `,reason="schema"} 0+600x40
		vigie_ingest_events_accepted_total{` + ingest + `} 0+6000x40`, 30 * time.Minute, true, nil},
	{"1 % rejected", "VigieIngestRejectingEvents", `vigie_ingest_events_rejected_total{` + ingest + `,reason="schema"} 0+60x40
		vigie_ingest_events_accepted_total{` + ingest + `} 0+6000x40`, 30 * time.Minute, false, nil},

	{"2 unknown-sensor events a second", "VigieEnricherDeadLetters", `vigie_enricher_events_total{` + enricher + `,outcome="unknown_sensor"} 0+120x40`, 30 * time.Minute, true, map[string]string{"outcome": "unknown_sensor"}},
	{"every event enriched", "VigieEnricherDeadLetters", `vigie_enricher_events_total{` + enricher + `,outcome="enriched"} 0+6000x40`, 30 * time.Minute, false, nil},

	{"rows to the DLQ", "VigieWriterDeadLetters", `vigie_writer_dlq_total{` + writer + `,reason="rejected"} 0+1x30`, 15 * time.Minute, true, map[string]string{"reason": "rejected"}},
	{"no row to the DLQ", "VigieWriterDeadLetters", `vigie_writer_dlq_total{` + writer + `,reason="rejected"} 0x30`, 15 * time.Minute, false, nil},

	{"inserts failing", "VigieWriterInsertsFailing", `vigie_writer_batches_total{` + writer + `,result="failed"} 0+2x30`, 20 * time.Minute, true, nil},
	{"inserts ok", "VigieWriterInsertsFailing", `vigie_writer_batches_total{` + writer + `,result="ok"} 0+2x30
		vigie_writer_batches_total{` + writer + `,result="failed"} 0x30`, 20 * time.Minute, false, nil},

	{"ingest cannot produce", "VigieProduceErrors", `vigie_ingest_produce_errors_total{` + ingest + `,topic="detections.raw.v1"} 0+1x30`, 15 * time.Minute, true, map[string]string{"topic": "detections.raw.v1"}},
	{"enricher cannot produce", "VigieProduceErrors", `vigie_enricher_produce_failures_total{` + enricher + `,topic="detections.enriched.v1"} 0+1x30`, 15 * time.Minute, true, map[string]string{"job": "vigie-enricher"}},
	{"producing", "VigieProduceErrors", `vigie_ingest_produce_errors_total{` + ingest + `,topic="detections.raw.v1"} 0x30`, 15 * time.Minute, false, nil},

	{"a sensor with a revoked token", "VigieIngestAuthRefusals", `vigie_ingest_auth_refused_total{` + ingest + `,reason="unknown_token"} 0+12x40`, 30 * time.Minute, true, map[string]string{"reason": "unknown_token"}},
	{"a refusal now and then", "VigieIngestAuthRefusals", `vigie_ingest_auth_refused_total{` + ingest + `,reason="kind_not_allowed_for_sensor"} 0+1x40`, 30 * time.Minute, false, nil},
	{"credentials unavailable (VigieNotReady's)", "VigieIngestAuthRefusals", `vigie_ingest_auth_refused_total{` + ingest + `,reason="credentials_unavailable"} 0+600x40`, 30 * time.Minute, false, nil},

	{"2 requests a second limited", "VigieIngestRateLimiting", `vigie_ingest_rate_limited_total{` + ingest + `} 0+120x60`, 50 * time.Minute, true, nil},
	{"one request every 2 s limited", "VigieIngestRateLimiting", `vigie_ingest_rate_limited_total{` + ingest + `} 0+30x60`, 50 * time.Minute, false, nil},

	{"a scheduled rule failing", "VigieScheduledRulesFailing", `vigie_correlator_scheduled_failures_total{` + correlator + `,rule="tac_block_national"} 0+1x40`, 35 * time.Minute, true, map[string]string{"rule": "tac_block_national"}},
	{"no failure", "VigieScheduledRulesFailing", `vigie_correlator_scheduled_failures_total{` + correlator + `,rule="tac_block_national"} 0x40`, 35 * time.Minute, false, nil},

	{"a rule 4 hours behind", "VigieScheduledRuleBehind", `vigie_correlator_event_clock_seconds{` + correlator + `} 1000000000+60x60
		vigie_correlator_scheduled_watermark_seconds{` + correlator + `,rule="tac_block_national"} 999985600+60x60`, 45 * time.Minute, true, map[string]string{"rule": "tac_block_national"}},
	{"a rule 1 hour behind", "VigieScheduledRuleBehind", `vigie_correlator_event_clock_seconds{` + correlator + `} 1000000000+60x60
		vigie_correlator_scheduled_watermark_seconds{` + correlator + `,rule="tac_block_national"} 999996400+60x60`, 45 * time.Minute, false, nil},

	{"clock frozen, rows arriving", "VigieEventClockStalled", `vigie_correlator_event_clock_seconds{` + correlator + `} 1000000000x80
		vigie_writer_rows_written_total{` + writer + `} 0+600x80`, 60 * time.Minute, true, map[string]string{"job": "vigie-correlator"}},
	{"clock moving", "VigieEventClockStalled", `vigie_correlator_event_clock_seconds{` + correlator + `} 1000000000+60x80
		vigie_writer_rows_written_total{` + writer + `} 0+600x80`, 60 * time.Minute, false, nil},
	{"clock still, no traffic", "VigieEventClockStalled", `vigie_correlator_event_clock_seconds{` + correlator + `} 1000000000x80
		vigie_writer_rows_written_total{` + writer + `} 5000x80`, 60 * time.Minute, false, nil},

	{"identities dropped", "VigieCorrelatorDedupOverflow", `vigie_correlator_dedup_dropped_total{` + correlator + `} 0+10x40`, 30 * time.Minute, true, nil},
	{"no identity dropped", "VigieCorrelatorDedupOverflow", `vigie_correlator_dedup_dropped_total{` + correlator + `} 0x40`, 30 * time.Minute, false, nil},

	{"state budget reached", "VigieCorrelatorStateOverflow", `vigie_correlator_state_overflow_total{` + correlator + `,rule="DEVICE_MULTI_SITE",kind="budget"} 0x10 0+5000x10 50000x20
		vigie_correlator_state_overflow_total{` + correlator + `,rule="SIM_CHURN",kind="values"} 0x40`, 25 * time.Minute, true,
		map[string]string{"rule": "DEVICE_MULTI_SITE", "kind": "budget", "severity": "ticket"}},
	{"state budget reached an hour ago", "VigieCorrelatorStateOverflow", `vigie_correlator_state_overflow_total{` + correlator + `,rule="DEVICE_MULTI_SITE",kind="budget"} 0x10 0+5000x10 50000x60`, 80 * time.Minute, false, nil},
	{"no state overflow", "VigieCorrelatorStateOverflow", `vigie_correlator_state_overflow_total{` + correlator + `,rule="SIM_CHURN",kind="values"} 0x40`, 30 * time.Minute, false, nil},

	{"alert writes failing", "VigieAlertSinkFailing", `vigie_correlator_streaming_sink_errors_total{` + correlator + `} 0+1x30`, 20 * time.Minute, true, nil},
	{"alert writes ok", "VigieAlertSinkFailing", `vigie_correlator_streaming_sink_errors_total{` + correlator + `} 0x30`, 20 * time.Minute, false, nil},

	{"a partition under-replicated 9 minutes", "VigieKafkaUnderReplicated", `kafka_topic_partition_under_replicated_partition{job="kafka-exporter",topic="detections.raw.v1",partition="3"} 0x5 1x20
		kafka_topic_partition_under_replicated_partition{job="kafka-exporter",topic="detections.raw.v1",partition="0"} 0x25`, 15 * time.Minute, true, map[string]string{"topic": "detections.raw.v1"}},
	{"under-replicated 2 minutes (a broker restart)", "VigieKafkaUnderReplicated", `kafka_topic_partition_under_replicated_partition{job="kafka-exporter",topic="detections.raw.v1",partition="3"} 0x5 1x2 0x20`, 15 * time.Minute, false, nil},
}

// TestAlertsFire evaluates each alert on series that should fire it and on series that
// should not.
func TestAlertsFire(t *testing.T) {
	covered := map[string][2]bool{}
	for _, c := range alertCases {
		t.Run(c.alert+"/"+c.name, func(t *testing.T) {
			got := firing(t, c.series, c.at, c.alert)[c.alert]
			if !c.fires {
				require.Empty(t, got, "%s fired", c.alert)
				return
			}
			require.NotEmpty(t, got, "%s did not fire", c.alert)
			for k, v := range c.labels {
				require.Equal(t, v, got[0].Labels.Get(k), "label %s", k)
			}
			for k, v := range got[0].Annotations.Map() {
				require.NotContains(t, v, "error expanding", "annotation %s", k)
				require.NotContains(t, v, "<no value>", "annotation %s", k)
			}
		})
		seen := covered[c.alert]
		if c.fires {
			seen[0] = true
		} else {
			seen[1] = true
		}
		covered[c.alert] = seen
	}
	// Every alert of the file has a case where it fires and one where it does not.
	data, err := readRules()
	require.NoError(t, err)
	var alerts []string
	for _, line := range strings.Split(data, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: "); ok {
			alerts = append(alerts, name)
		}
	}
	require.NotEmpty(t, alerts)
	for _, a := range alerts {
		require.Equal(t, [2]bool{true, true}, covered[a], "%s needs a case that fires and one that does not", a)
	}
	for a := range covered {
		require.True(t, slices.Contains(alerts, a), "case for %s, which is no alert", a)
	}
}
