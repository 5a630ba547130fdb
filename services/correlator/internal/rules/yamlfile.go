package rules

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ruleFile is the YAML form of a rule; the schema checks its shape.
type ruleFile struct {
	Rule        string         `yaml:"rule"`
	Title       string         `yaml:"title"`
	Description string         `yaml:"description"`
	Enabled     *bool          `yaml:"enabled"`
	Severity    string         `yaml:"severity"`
	Type        Type           `yaml:"type"`
	Mode        Mode           `yaml:"mode"`
	Source      string         `yaml:"source"`
	Where       map[string]any `yaml:"where"`
	GroupBy     []string       `yaml:"group_by"`
	Window      string         `yaml:"window"`
	Threshold   int            `yaml:"threshold"`
	Distinct    []struct {
		Field string `yaml:"field"`
		Min   int    `yaml:"min"`
	} `yaml:"distinct"`
	History       string    `yaml:"history"`
	First         *stepYAML `yaml:"first"`
	Then          *stepYAML `yaml:"then"`
	Ordered       *bool     `yaml:"ordered"`
	MinGap        string    `yaml:"min_gap"`
	Different     []string  `yaml:"different"`
	MinDistanceKm float64   `yaml:"min_distance_km"`
	Bucket        string    `yaml:"bucket"`
	Baseline      struct {
		Window        string   `yaml:"window"`
		SameHourOfDay bool     `yaml:"same_hour_of_day"`
		MinStddev     float64  `yaml:"min_stddev"`
		New           string   `yaml:"new"`
		Growth        *float64 `yaml:"growth"`
		GrowthOf      []string `yaml:"growth_of"`
	} `yaml:"baseline"`
	NeedsHistory *string `yaml:"needs_history"`
	Stddevs      float64 `yaml:"stddevs"`
	MinCount     int     `yaml:"min_count"`
	MinGroups    int     `yaml:"min_groups"`
	Schedule     struct {
		Every    string `yaml:"every"`
		Lateness string `yaml:"lateness"`
	} `yaml:"schedule"`
	UpdateEvery string `yaml:"update_every"`
	MaxEvidence int    `yaml:"max_evidence"`
	Explanation string `yaml:"explanation"`
}

type stepYAML struct {
	Where        map[string]any `yaml:"where"`
	ActiveBefore *struct {
		Within string         `yaml:"within"`
		Same   []string       `yaml:"same"`
		Where  map[string]any `yaml:"where"`
	} `yaml:"active_before"`
	NewTerm *struct {
		Field    string `yaml:"field"`
		History  string `yaml:"history"`
		Source   string `yaml:"source"`
		Min      int    `yaml:"min"`
		Baseline *struct {
			Window  string  `yaml:"window"`
			Stddevs float64 `yaml:"stddevs"`
		} `yaml:"baseline"`
	} `yaml:"new_term"`
}

// maxDepth bounds the nesting of a rule file (a rule nests four levels deep); it also stops
// an alias that contains itself.
const maxDepth = 32

// toJSONValue converts a YAML node into the values encoding/json would produce, which is
// what the JSON Schema validator expects.
func toJSONValue(n *yaml.Node) (any, error) { return jsonValue(n, 0) }

func jsonValue(n *yaml.Node, depth int) (any, error) {
	if depth > maxDepth {
		return nil, &Problem{Line: n.Line, Column: n.Column, Message: "nested too deep (an alias that contains itself?)"}
	}
	depth++
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return jsonValue(n.Content[0], depth)
	case yaml.AliasNode:
		return jsonValue(n.Alias, depth)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := jsonValue(n.Content[i+1], depth)
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := jsonValue(c, depth)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
			if err != nil {
				return nil, &Problem{Line: n.Line, Column: n.Column, Message: fmt.Sprintf("%q is not a number", n.Value)}
			}
			return f, nil
		case "!!bool":
			return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
		case "!!null":
			return nil, nil
		}
		return n.Value, nil
	}
	return nil, &Problem{Line: n.Line, Column: n.Column, Message: "unsupported YAML node"}
}
