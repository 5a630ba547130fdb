package kafka_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/testenv"
)

func TestConfigValidate(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "password")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	for _, tc := range []struct {
		name string
		edit func(*kafka.Config)
		want string // "" = valid
	}{
		{"default", func(*kafka.Config) {}, ""},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, "kafka.brokers: must not be empty"},
		{"no port", func(c *kafka.Config) { c.Brokers = []string{"localhost"} }, `kafka.brokers: "localhost" is not host:port`},
		{"tls half a pair", func(c *kafka.Config) { c.TLS = config.TLS{Enabled: true, CertFile: "c.pem"} }, "kafka.tls.cert_file"},
		{"sasl unknown", func(c *kafka.Config) { c.SASL = kafka.SASL{Mechanism: "gssapi", Username: "u", PasswordFile: secret} }, `kafka.sasl.mechanism: "gssapi"`},
		{"sasl no user", func(c *kafka.Config) { c.SASL = kafka.SASL{Mechanism: "plain", PasswordFile: secret} }, "kafka.sasl.username"},
		{"sasl no password", func(c *kafka.Config) { c.SASL = kafka.SASL{Mechanism: "scram-sha-512", Username: "u"} }, "kafka.sasl.password_file"},
		{"user without mechanism", func(c *kafka.Config) { c.SASL = kafka.SASL{Username: "u"} }, "kafka.sasl.mechanism: must be set"},
		{"scram", func(c *kafka.Config) {
			c.SASL = kafka.SASL{Mechanism: "scram-sha-256", Username: "u", PasswordFile: secret}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafka.DefaultConfig()
			tc.edit(&c)
			err := c.Validate("kafka")
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestConfigSecurity(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	open := filepath.Join(dir, "open")
	require.NoError(t, os.WriteFile(good, []byte("s3cret\n"), 0o600))
	require.NoError(t, os.WriteFile(open, []byte("s3cret\n"), 0o644))

	plain := kafka.DefaultConfig()
	d, err := plain.Dialer()
	require.NoError(t, err)
	require.Nil(t, d.TLS)
	require.Nil(t, d.SASLMechanism)

	for _, mech := range []string{kafka.SASLPlain, kafka.SASLScramSHA256, kafka.SASLScramSHA512} {
		c := kafka.DefaultConfig()
		c.SASL = kafka.SASL{Mechanism: mech, Username: "vigie", PasswordFile: good}
		d, err := c.Dialer()
		require.NoError(t, err, mech)
		require.NotNil(t, d.SASLMechanism, mech)
		tr, err := c.Transport()
		require.NoError(t, err, mech)
		require.NotNil(t, tr.SASL, mech)
	}

	c := kafka.DefaultConfig()
	c.SASL = kafka.SASL{Mechanism: kafka.SASLPlain, Username: "vigie", PasswordFile: open}
	_, err = c.Transport()
	require.ErrorIs(t, err, config.ErrSecretMode, "a password others can read stops the start")
	require.ErrorContains(t, err, open)
	_, err = kafka.NewProducer(c, kafka.DefaultProducerConfig(), "t")
	require.ErrorIs(t, err, config.ErrSecretMode)

	c = kafka.DefaultConfig()
	c.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}
	_, err = c.Dialer()
	require.ErrorContains(t, err, "missing.pem")
	c.TLS = config.TLS{Enabled: true, ServerName: "kafka.example"}
	tr, err := c.Transport()
	require.NoError(t, err)
	require.Equal(t, "kafka.example", tr.TLS.ServerName)
}

func TestProducerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*kafka.ProducerConfig)
		want string
	}{
		{"default", func(*kafka.ProducerConfig) {}, ""},
		{"acks leader", func(c *kafka.ProducerConfig) { c.Acks = "leader" }, ""},
		{"acks none", func(c *kafka.ProducerConfig) { c.Acks = "none" }, ""},
		{"acks bad", func(c *kafka.ProducerConfig) { c.Acks = "1" }, `producer.acks: "1"`},
		{"batch", func(c *kafka.ProducerConfig) { c.BatchSize = 0 }, "producer.batch_size"},
		{"timeout", func(c *kafka.ProducerConfig) { c.BatchTimeout = 0 }, "producer.batch_timeout"},
		{"write", func(c *kafka.ProducerConfig) { c.WriteTimeout = -1 }, "producer.write_timeout"},
		{"attempts", func(c *kafka.ProducerConfig) { c.MaxAttempts = 0 }, "producer.max_attempts"},
		{"compression", func(c *kafka.ProducerConfig) { c.Compression = "brotli" }, "producer.compression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafka.DefaultProducerConfig()
			require.Equal(t, kafka.AcksAll, c.Acks)
			tc.edit(&c)
			err := c.Validate("producer")
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestProducerWritesAndKeysStick(t *testing.T) {
	ctx := context.Background()
	conn := singleConfig(t)
	topic := testenv.Name(t, "topic")
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: 4}}, zaptest.NewLogger(t))
	require.NoError(t, err)

	for _, acks := range []string{kafka.AcksAll, kafka.AcksLeader} {
		cfg := kafka.DefaultProducerConfig()
		cfg.Acks = acks
		p, err := kafka.NewProducer(conn, cfg, topic)
		require.NoError(t, err)
		require.Equal(t, topic, p.Topic())
		msgs := make([]kafka.Message, 0, 100)
		for i := range 100 {
			msgs = append(msgs, kafka.Message{Key: []byte("device-" + strconv.Itoa(i%10)), Value: []byte(acks + strconv.Itoa(i))})
		}
		require.NoError(t, p.Write(ctx, msgs...))
		require.NoError(t, p.Write(ctx), "nothing to write")
		require.NoError(t, p.Close())
	}
	offsets, err := kafka.PartitionOffsets(ctx, conn, topic)
	require.NoError(t, err)
	total := int64(0)
	for _, o := range offsets {
		total += o
	}
	require.EqualValues(t, 200, total, "every message acknowledged before Write returned")

	// murmur2 like the Java client: each key always lands on the partition Murmur2Balancer picks.
	want := map[string]int{}
	for i := range 10 {
		key := "device-" + strconv.Itoa(i)
		want[key] = (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: []byte(key)}, 0, 1, 2, 3)
	}
	readPartitions(t, conn, topic, offsets, func(part int, m kafkago.Message) {
		require.Equal(t, want[string(m.Key)], part, "key %s", m.Key)
	})
}

// readPartitions reads every message of each partition of topic up to its offset, and
// hands it to f with its partition.
func readPartitions(t *testing.T, conn kafka.Config, topic string, offsets map[int]int64, f func(part int, m kafkago.Message)) {
	t.Helper()
	for part, end := range offsets {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: conn.Brokers, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond})
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		for range end {
			m, err := r.ReadMessage(rctx)
			require.NoError(t, err)
			f(part, m)
		}
		cancel()
		require.NoError(t, r.Close())
	}
}

func TestProducerNeverCreatesTopics(t *testing.T) {
	cfg := kafka.DefaultProducerConfig()
	cfg.WriteTimeout = 2 * time.Second
	cfg.MaxAttempts = 1
	p, err := kafka.NewProducer(singleConfig(t), cfg, "")
	require.NoError(t, err)
	defer p.Close()
	missing := testenv.Name(t, "missing")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = p.Write(ctx, kafka.Message{Topic: missing, Value: []byte("x")})
	require.Error(t, err)
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = kafka.PartitionOffsets(ctx, singleConfig(t), missing)
	require.Error(t, err, "the topic was not created by producing to it")
}

func TestPingAndWaitForTopic(t *testing.T) {
	ctx := context.Background()
	conn := singleConfig(t)
	require.NoError(t, kafka.Ping(ctx, conn))
	require.Error(t, kafka.Ping(ctx, kafka.Config{Brokers: []string{"127.0.0.1:1"}}))

	topic := testenv.Name(t, "topic")
	done := make(chan error, 1)
	go func() { done <- kafka.WaitForTopic(ctx, conn, topic, zaptest.NewLogger(t)) }()
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: 1}}, zaptest.NewLogger(t))
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("WaitForTopic did not return after the topic was created")
	}

	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, kafka.WaitForTopic(cctx, conn, testenv.Name(t, "never"), zaptest.NewLogger(t)), context.DeadlineExceeded)
}

// A message with a route header goes to partition route mod N whatever its key (a device
// whose pseudonym changed with a key rotation stays where its history is); a header that
// is not hex falls back to the key.
func TestProducerRoutesByHeader(t *testing.T) {
	ctx := context.Background()
	conn := singleConfig(t)
	topic := testenv.Name(t, "topic")
	_, err := kafka.ApplyTopics(ctx, conn, []kafka.TopicSpec{{Name: topic, Partitions: 3}}, zaptest.NewLogger(t))
	require.NoError(t, err)
	p, err := kafka.NewProducer(conn, kafka.DefaultProducerConfig(), topic)
	require.NoError(t, err)
	want := map[string]int{}
	var msgs []kafka.Message
	for i := range 60 {
		route := fmt.Sprintf("%02x", i*7%256)
		m := kafka.Message{Key: []byte("pseudonym-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
			Headers: []kafkago.Header{{Key: "ref_version", Value: []byte("v1")}, {Key: kafka.RouteHeader, Value: []byte(route)}}}
		want[string(m.Value)] = (i * 7 % 256) % 3
		if i%10 == 0 { // not a route: by key
			m.Headers[1].Value = []byte("zz")
			want[string(m.Value)] = (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: m.Key}, 0, 1, 2)
		}
		msgs = append(msgs, m)
	}
	require.NoError(t, p.Write(ctx, msgs...))
	require.NoError(t, p.Close())
	offsets, err := kafka.PartitionOffsets(ctx, conn, topic)
	require.NoError(t, err)
	got := 0
	readPartitions(t, conn, topic, offsets, func(part int, m kafkago.Message) {
		require.Equal(t, want[string(m.Value)], part, "message %s", m.Value)
		got++
	})
	require.Equal(t, 60, got)
}
