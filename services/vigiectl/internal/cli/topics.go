package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"text/tabwriter"

	"github.com/vigie/vigie/pkg/kafka"
	"github.com/vigie/vigie/pkg/telemetry"
	topicspec "github.com/vigie/vigie/schemas/kafka"
)

// TopicsConfig is the configuration of `vigiectl topics apply`.
type TopicsConfig struct {
	Log    telemetry.LogConfig `yaml:"log"`
	Kafka  kafka.Config        `yaml:"kafka"`
	Topics TopicNames          `yaml:"topics"`
}

// TopicNames changes the names of the spec's topics.
type TopicNames struct {
	// Suffix is appended to every topic name of the spec, as the services are told with
	// their topics.* keys: a local demo (VIGIE_TOPIC_SUFFIX) gets topics of its own.
	Suffix string `yaml:"suffix"`
}

var suffixChars = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

// Validate names the first bad key.
func (c *TopicsConfig) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if !suffixChars.MatchString(c.Topics.Suffix) {
		return fmt.Errorf("topics.suffix: %q may hold only [a-zA-Z0-9._-]", c.Topics.Suffix)
	}
	return c.Kafka.Validate("kafka")
}

// errDrift is what -strict makes of drift that apply cannot fix.
var errDrift = errors.New("the cluster differs from the spec in ways apply cannot fix (drift above)")

func runTopicsApply(ctx context.Context, s streams, args []string) error {
	cfg := &TopicsConfig{Log: defaultLog(), Kafka: kafka.DefaultConfig()}
	fs := flag.NewFlagSet("topics apply", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "report what would change, change nothing")
	strict := fs.Bool("strict", false, "exit 1 when there is drift apply cannot fix (replication factor, more partitions than the spec)")
	specFile := fs.String("spec", "", "topic spec file (default: the schemas/kafka/topics.yaml built into vigiectl)")
	if _, err := parse(s, "topics apply", fs, cfg, args); err != nil {
		return err
	}
	data := topicspec.Spec
	if *specFile != "" {
		var err error
		if data, err = os.ReadFile(*specFile); err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
	}
	specs, err := kafka.LoadTopicSpecs(data)
	if err != nil {
		return err
	}
	specs = kafka.WithSuffix(specs, cfg.Topics.Suffix)
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	var opts []kafka.ApplyOption
	if *dryRun {
		opts = append(opts, kafka.DryRun())
	}
	changes, err := kafka.ApplyTopics(ctx, cfg.Kafka, specs, log.Named("topics"), opts...)
	if err != nil {
		// What was changed before the error is still worth seeing.
		if len(changes) > 0 {
			printChanges(s, changes, len(specs), *dryRun)
		}
		return err
	}
	printChanges(s, changes, len(specs), *dryRun)
	drift := 0
	for _, c := range changes {
		if c.Drift() {
			drift++
		}
	}
	if drift > 0 {
		if *strict {
			return errDrift
		}
		fmt.Fprintf(s.stderr, "%s topics apply: %d drift(s) left as they are; -strict makes them an error\n", Name, drift)
	}
	return nil
}

// printChanges prints the changes as a table on stdout, or that everything matches.
func printChanges(s streams, changes []kafka.TopicChange, topics int, dryRun bool) {
	if len(changes) == 0 {
		fmt.Fprintf(s.stdout, "%d topics match the spec\n", topics)
		return
	}
	w := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tCHANGE\tFROM\tTO\tSTATUS")
	for _, c := range changes {
		status := "applied"
		switch {
		case c.Drift():
			status = "drift: not fixable by apply"
		case dryRun:
			status = "dry run"
		case !c.Applied:
			status = "not applied"
		}
		from := c.From
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Topic, c.What, from, c.To, status)
	}
	_ = w.Flush()
}
