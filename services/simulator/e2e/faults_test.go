package e2e

// Fault tests of issue #13: each sends a stream through the real services, breaks something
// mid-stream, and counts end to end (checkCounted): every identity ingest acknowledged is one
// row of detections (or one downstream dead letter), no identity is two rows, every rollup
// sums to the raw table's count, no clear identifier is downstream of ingest.

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/testenv"
)

// streamUntil sends events in the background and returns when at least share of them are
// acknowledged; wait returns when the stream has ended.
func streamUntil(ctx context.Context, t *testing.T, tr *tracker, events []event.Detector, opt sendOptions, share float64) (wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); tr.send(ctx, t, events, opt) }()
	waitAcked(t, tr, done, int(share*float64(len(events))))
	return func() { <-done }
}

// waitAcked polls until n identities are acknowledged (the stream must not end before).
func waitAcked(t *testing.T, tr *tracker, done <-chan struct{}, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		if tr.ackedCount() >= n {
			return true
		}
		select {
		case <-done:
			t.Fatalf("the stream ended before %d acknowledgements: %s", n, tr)
		default:
		}
		return false
	}, 3*time.Minute, 20*time.Millisecond, "fewer than %d acknowledgements: %s", n, tr)
}

// (a) Ingest SIGKILLed while a sender streams (its batches in flight and those after are
// not acknowledged), restarted; the sender resends everything unacknowledged and 30% of
// what was acknowledged.
func TestFaultIngestKilledSenderResends(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newPipeline(t, testenv.KafkaBrokers(t), "fa")
	p.start()
	events := faultEvents(t, 31)
	p.logf("pipeline started, %d events to send", len(events))
	tr := newTracker(p)
	wait := streamUntil(ctx, t, tr, events, sendOptions{Workers: 4, Batch: 100, Rate: streamRate(events)}, 0.4)
	p.kill("ingest")
	wait()
	first := tr.ackedSet()
	p.logf("ingest killed: %d of %d events acknowledged before; %s", len(first), len(events), tr)
	require.Less(t, len(first), len(events), "the kill came after the stream")

	p.startServices("ingest")
	rng := rand.New(rand.NewPCG(31, 1))
	var resend []event.Detector
	again := 0
	for _, e := range events {
		switch {
		case !first[identOf(&e)]:
			resend = append(resend, e)
		case rng.Float64() < 0.3:
			resend = append(resend, e)
			again++
		}
	}
	before := tr.accepted
	tr.send(ctx, t, resend, sendOptions{Workers: 4, Batch: 100, Retry: true})
	p.logf("resent %d unacknowledged and %d acknowledged: %s", len(resend)-again, again, tr)
	require.Len(t, tr.ackedSet(), len(events), "every event acknowledged after the resend")
	// Ingest's duplicate check survives its restart: an acknowledged event resent is a
	// duplicate, not accepted again.
	assert.LessOrEqual(t, tr.accepted-before, int64(len(resend)-again), "ingest accepted again events it had acknowledged before its restart")
	p.checkCounted(ctx, tr, nil)
}

// (b) The broker restarted mid-stream: a broker of this test's own (restarting the shared
// one would break the tests running beside this one).
func TestFaultBrokerRestarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b := startOwnBroker(t)
	p := newPipeline(t, b.brokers, "fb")
	p.start()
	events := faultEvents(t, 32)
	tr := newTracker(p)
	wait := streamUntil(ctx, t, tr, events, sendOptions{Workers: 4, Batch: 100, Rate: streamRate(events), Retry: true}, 0.35)
	began := time.Now()
	b.restart(t)
	p.logf("broker restarted in %s with %d of %d events acknowledged", time.Since(began).Round(time.Millisecond), tr.ackedCount(), len(events))
	wait()
	p.logf("stream sent")
	require.Len(t, tr.ackedSet(), len(events), "every event acknowledged: %s", tr)
	p.checkCounted(ctx, tr, nil)
}

// (c) On the three-broker cluster, the leader of partition 0 of the raw topic SIGKILLed
// mid-stream, started again later while the stream goes on.
func TestFaultClusterLeaderKilled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	brokers := cluster(t)
	p := newPipeline(t, brokers, "fc")
	p.start()
	events := faultEvents(t, 33)
	tr := newTracker(p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.send(ctx, t, events, sendOptions{Workers: 4, Batch: 100, Rate: streamRate(events), Retry: true})
	}()
	waitAcked(t, tr, done, len(events)*3/10)
	node := leaderOf(ctx, t, brokers, p.raw, 0)
	enrichedNode := leaderOf(ctx, t, brokers, p.enriched, 0)
	killNode(t, node)
	p.logf("killed node %d, leader of %s/0 (the leader of %s/0 was node %d), at %d of %d acknowledged", node, p.raw, p.enriched, enrichedNode, tr.ackedCount(), len(events))
	waitAcked(t, tr, done, len(events)*6/10)
	startNode(t, node)
	p.logf("node %d started again at %d acknowledged", node, tr.ackedCount())
	<-done
	p.logf("stream sent")
	require.Len(t, tr.ackedSet(), len(events), "every event acknowledged: %s", tr)
	p.checkCounted(ctx, tr, nil)
}

// (d) The raw and enriched topics deleted and recreated between two runs; the second sends
// the first's events again with new ones: exactly one row per identity.
func TestFaultTopicsRecreated(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newPipeline(t, testenv.KafkaBrokers(t), "fd")
	p.start()
	events := faultEvents(t, 34)
	firstRun := events[:len(events)/2]
	tr := newTracker(p)
	tr.send(ctx, t, firstRun, sendOptions{Workers: 4, Batch: 100, Retry: true})
	require.Len(t, tr.ackedSet(), len(firstRun), "first run acknowledged: %s", tr)
	p.waitDrained(ctx, p.open(ctx), tr.ackedSet(), 6*time.Minute)
	p.stopAll()
	p.logf("first run drained and stopped")

	deleteTopics(ctx, t, p.brokers, p.raw, p.enriched)
	require.Eventually(t, func() bool {
		err := runCmd(t, p.vigiectl(), "topics", "apply", "-kafka.brokers="+strings.Join(p.brokers, ","), "-topics.suffix=."+p.name, "-log.level=warn")
		if err != nil {
			t.Logf("topics apply after the delete: %v", err)
		}
		return err == nil
	}, time.Minute, time.Second)
	p.start()
	p.logf("topics recreated, pipeline started again")
	tr.send(ctx, t, events, sendOptions{Workers: 4, Batch: 100, Retry: true})
	require.Len(t, tr.ackedSet(), len(events), "second run acknowledged: %s", tr)
	p.checkCounted(ctx, tr, nil)
}

// deleteTopics deletes topics and waits until the brokers no longer list them.
func deleteTopics(ctx context.Context, t *testing.T, brokers []string, topics ...string) {
	t.Helper()
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tr, Timeout: 30 * time.Second}
	resp, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics})
	require.NoError(t, err)
	for tp, err := range resp.Errors {
		require.NoError(t, err, "delete %s", tp)
	}
	require.Eventually(t, func() bool {
		meta, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
		if err != nil {
			return false
		}
		for _, tp := range meta.Topics {
			if tp.Error == nil {
				return false
			}
		}
		return true
	}, time.Minute, 200*time.Millisecond, "topics %v still listed after their deletion", topics)
}

// restart stops the broker gracefully (SIGTERM) and starts it again on the same data.
func (b *ownBroker) restart(t *testing.T) {
	t.Helper()
	require.NoError(t, kafkaSh(b.env, "stop", "single"))
	require.NoError(t, kafkaSh(b.env, "start", "single"))
}

// kill SIGKILLs a service and waits until it is gone.
func (p *pipeline) kill(service string) {
	p.t.Helper()
	p.mu.Lock()
	pr := p.procs[service]
	p.mu.Unlock()
	require.NotNil(p.t, pr, service)
	pr.kill()
}

// kill SIGKILLs the process (a crash: nothing drained) and waits for its end. The stop of
// the test's cleanup then finds it gone.
func (pr *proc) kill() {
	pr.stopOnce.Do(func() {
		_ = pr.cmd.Process.Kill()
		select {
		case err := <-pr.done:
			pr.done <- err
		case <-time.After(30 * time.Second):
		}
	})
}

func (tr *tracker) ackedCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.acked)
}
