package grafana

// An expander of ClickHouse panel queries that does what Grafana and the
// grafana-clickhouse-datasource plugin (v4) do to a query before it reaches ClickHouse:
//
//  1. the plugin's frontend replaces $__conditionalAll(condition, $var) by the condition, or
//     by 1=1 when the variable's current value is All or empty (CHDatasource.applyConditionalAll);
//  2. Grafana's template service replaces the dashboard variables ($var, ${var}, ${var:format},
//     [[var]]) and the built-ins $__interval, $__interval_ms, $__from, $__to; the plugin's own
//     format joins a multi-value as 'a','b' and leaves a single value unquoted;
//  3. the plugin's backend (sqlds) expands its macros (pkg/macros/macros.go):
//     $__timeFilter(c)      c >= toDateTime(from_s) AND c <= toDateTime(to_s)
//     $__timeFilter_ms(c)   c >= fromUnixTimestamp64Milli(from_ms) AND c <= fromUnixTimestamp64Milli(to_ms)
//     $__dateFilter(c)      c >= toDate('YYYY-MM-DD') AND c <= toDate('YYYY-MM-DD')
//     $__dateTimeFilter(d, t) / $__dt(d, t)   both of the above, parenthesised
//     $__timeInterval(c)    toStartOfInterval(toDateTime(c), INTERVAL n second)
//     $__timeInterval_ms(c) toStartOfInterval(toDateTime64(c, 3), INTERVAL n millisecond)
//     $__interval_s         n (seconds, at least 1)
//     $__fromTime, $__toTime          toDateTime(s)
//     $__fromTime_ms, $__toTime_ms    fromUnixTimestamp64Milli(ms)
//
// sqlds matches a macro with `\$__name\b(?:\((.*?)\))?`, so an argument must not contain a
// parenthesis (the first ')' would end it): expandQuery refuses such arguments rather than
// expanding them differently from the plugin.

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// allValue is Grafana's value of a variable whose "All" option is selected.
const allValue = "$__all"

// variable is a dashboard template variable with its current value(s) and options.
type variable struct {
	Name     string
	Multi    bool
	Current  []string // one element for a single value; {allValue} for All
	Options  []string // every value the variable can take (what All expands to)
	AllValue string   // the variable's custom all value, if any
}

// queryEnv is what a query is expanded with: the time range, the interval Grafana computed
// for the panel, and the dashboard variables.
type queryEnv struct {
	From, To time.Time
	Interval time.Duration
	Vars     map[string]*variable
}

var errMacroArgs = errors.New("macro argument holds a parenthesis: the plugin's backend would cut it at the first ')'")

// expandQuery expands raw as Grafana and the plugin would for env.
func expandQuery(raw string, env queryEnv) (string, error) {
	q, err := applyConditionalAll(raw, env.Vars)
	if err != nil {
		return "", err
	}
	q = interpolateVariables(q, env)
	return expandMacros(q, env)
}

// applyConditionalAll follows CHDatasource.applyConditionalAll: from the last occurrence
// backwards, take the two bracket-balanced arguments; the first replaces the macro unless the
// variable named by the second is All or empty, then 1=1 does.
func applyConditionalAll(q string, vars map[string]*variable) (string, error) {
	const macro = "$__conditionalAll("
	varName := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	for i := strings.LastIndex(q, macro); i >= 0; i = strings.LastIndex(q, macro) {
		args, end, ok := macroArgs(q, i+len(macro)-1)
		if !ok || len(args) != 2 {
			return "", fmt.Errorf("$__conditionalAll at %d: want 2 arguments, got %q", i, args)
		}
		phrase := args[0]
		if m := varName.FindStringSubmatch(strings.TrimSpace(args[1])); m != nil {
			name := m[1] + m[2]
			v, ok := vars[name]
			if !ok {
				return "", fmt.Errorf("$__conditionalAll names an unknown variable %q", name)
			}
			if len(v.Current) == 0 || (len(v.Current) == 1 && (v.Current[0] == "" || v.Current[0] == allValue)) {
				phrase = "1=1"
			}
		}
		q = q[:i] + phrase + q[end:]
	}
	return q, nil
}

// macroArgs reads the comma-separated, bracket-balanced arguments of the call whose '(' is at
// open; end is the index after the closing ')'.
func macroArgs(q string, open int) (args []string, end int, ok bool) {
	depth, start := 0, open+1
	for i := open; i < len(q); i++ {
		switch q[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return append(args, q[start:i]), i + 1, true
			}
		case ',':
			if depth == 1 {
				args = append(args, q[start:i])
				start = i + 1
			}
		}
	}
	return nil, 0, false
}

// grafanaVariable is Grafana's variable syntax (public/app/features/variables/utils.ts).
var grafanaVariable = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// interpolateVariables replaces dashboard variables and Grafana's built-ins; unknown names
// (the plugin's $__macros) are left for expandMacros.
func interpolateVariables(q string, env queryEnv) string {
	return grafanaVariable.ReplaceAllStringFunc(q, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name, format := sub[1], ""
		switch {
		case sub[2] != "":
			name, format = sub[2], sub[3]
		case sub[4] != "":
			name, format = sub[4], sub[6]
		}
		switch name {
		case "__interval":
			return formatDuration(env.Interval)
		case "__interval_ms":
			return strconv.FormatInt(env.Interval.Milliseconds(), 10)
		case "__from":
			return strconv.FormatInt(env.From.UnixMilli(), 10)
		case "__to":
			return strconv.FormatInt(env.To.UnixMilli(), 10)
		}
		v, ok := env.Vars[name]
		if !ok {
			return m
		}
		values := v.Current
		if len(values) == 1 && values[0] == allValue {
			if v.AllValue != "" {
				return v.AllValue
			}
			values = v.Options
		}
		return formatValues(values, v.Multi || len(values) != 1, format)
	})
}

// formatValues applies a Grafana variable format; without one, the plugin's own format
// (CHDatasource.format): a list becomes 'a','b', a single value stays as it is.
func formatValues(values []string, list bool, format string) string {
	quote := func(v, q, esc string) string { return q + strings.ReplaceAll(v, q, esc) + q }
	each := func(f func(string) string, sep string) string {
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = f(v)
		}
		return strings.Join(out, sep)
	}
	switch format {
	case "singlequote":
		return each(func(v string) string { return quote(v, "'", `\'`) }, ",")
	case "doublequote":
		return each(func(v string) string { return quote(v, `"`, `\"`) }, ",")
	case "sqlstring":
		return each(func(v string) string { return quote(v, "'", "''") }, ",")
	case "csv", "raw":
		return strings.Join(values, ",")
	case "":
		if list {
			return "'" + strings.Join(values, "','") + "'"
		}
		return values[0]
	default:
		return strings.Join(values, ",")
	}
}

func formatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// pluginMacros are the backend macros of grafana-clickhouse-datasource v4 (pkg/macros).
var pluginMacros = map[string]func(env queryEnv, args []string) (string, error){
	"fromTime":    func(e queryEnv, _ []string) (string, error) { return toDateTime(e.From), nil },
	"toTime":      func(e queryEnv, _ []string) (string, error) { return toDateTime(e.To), nil },
	"fromTime_ms": func(e queryEnv, _ []string) (string, error) { return toDateTime64(e.From), nil },
	"toTime_ms":   func(e queryEnv, _ []string) (string, error) { return toDateTime64(e.To), nil },
	"timeFilter": oneArg(func(e queryEnv, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, toDateTime(e.From), c, toDateTime(e.To))
	}),
	"timeFilter_ms": oneArg(func(e queryEnv, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, toDateTime64(e.From), c, toDateTime64(e.To))
	}),
	"dateFilter": oneArg(func(e queryEnv, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, toDate(e.From), c, toDate(e.To))
	}),
	"dateTimeFilter": dateTimeFilter,
	"dt":             dateTimeFilter,
	"timeInterval": oneArg(func(e queryEnv, c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", c, intervalSeconds(e))
	}),
	"timeInterval_ms": oneArg(func(e queryEnv, c string) string {
		ms := int64(math.Max(float64(e.Interval.Milliseconds()), 1))
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", c, ms)
	}),
	"interval_s": func(e queryEnv, _ []string) (string, error) { return strconv.Itoa(intervalSeconds(e)), nil },
}

func oneArg(f func(queryEnv, string) string) func(queryEnv, []string) (string, error) {
	return func(e queryEnv, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("expected 1 argument, received %d", len(args))
		}
		return f(e, args[0]), nil
	}
}

func dateTimeFilter(e queryEnv, args []string) (string, error) {
	if len(args) != 2 {
		return "", fmt.Errorf("expected 2 arguments, received %d", len(args))
	}
	return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
		args[0], toDate(e.From), args[0], toDate(e.To), args[1], toDateTime(e.From), args[1], toDateTime(e.To)), nil
}

func intervalSeconds(e queryEnv) int { return int(math.Max(e.Interval.Seconds(), 1)) }

// The plugin's renderings of a time: toDate (UTC day), toDateTime (seconds), DateTime64 (ms).
func toDate(t time.Time) string { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }

func toDateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }

func toDateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}

// expandMacros expands the backend macros like sqlds: for each macro name, every match of
// `\$__name\b(?:\((.*?)\))?` is replaced; arguments are split on ',' and trimmed.
func expandMacros(q string, env queryEnv) (string, error) {
	names := make([]string, 0, len(pluginMacros))
	for name := range pluginMacros {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		re := regexp.MustCompile(`\$__` + regexp.QuoteMeta(name) + `\b(?:\(([^)]*)\))?`)
		var err error
		q = re.ReplaceAllStringFunc(q, func(m string) string {
			sub := re.FindStringSubmatch(m)
			var args []string
			if strings.Contains(m, "(") {
				// The lazy match stopped at the first ')': an argument with '(' is cut.
				if strings.Contains(sub[1], "(") {
					err = fmt.Errorf("$__%s(%s…): %w", name, sub[1], errMacroArgs)
					return m
				}
				for _, a := range strings.Split(sub[1], ",") {
					args = append(args, strings.TrimSpace(a))
				}
			}
			out, ferr := pluginMacros[name](env, args)
			if ferr != nil && err == nil {
				err = fmt.Errorf("$__%s: %w", name, ferr)
			}
			return out
		})
		if err != nil {
			return "", err
		}
	}
	return q, nil
}

// leftover finds what no step expanded: a $name, ${…} or [[…]] still in the query.
var leftover = regexp.MustCompile(`\$\w+|\$\{[^}]*\}|\[\[\w+(:\w+)?\]\]`)

func TestExpandQuery(t *testing.T) {
	from := time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 25, 12, 0, 0, 500e6, time.UTC)
	env := queryEnv{From: from, To: to, Interval: 10 * time.Minute, Vars: map[string]*variable{
		"kind":     {Name: "kind", Multi: true, Current: []string{allValue}, Options: []string{"call_attempt", "mas_attach"}},
		"one":      {Name: "one", Multi: true, Current: []string{"sms_attempt"}, Options: []string{"sms_attempt"}},
		"facility": {Name: "facility", Current: []string{"cp-laon"}, Options: []string{"cp-laon", "cd-argentan"}},
		"min":      {Name: "min", Current: []string{"3"}},
	}}
	fs, fms := strconv.FormatInt(from.Unix(), 10), strconv.FormatInt(from.UnixMilli(), 10)
	ts, tms := strconv.FormatInt(to.Unix(), 10), strconv.FormatInt(to.UnixMilli(), 10)
	tests := []struct {
		name, in, want string
	}{
		{"timeFilter", "WHERE $__timeFilter(minute)", "WHERE minute >= toDateTime(" + fs + ") AND minute <= toDateTime(" + ts + ")"},
		{"timeFilter_ms", "WHERE $__timeFilter_ms(observed_at)",
			"WHERE observed_at >= fromUnixTimestamp64Milli(" + fms + ") AND observed_at <= fromUnixTimestamp64Milli(" + tms + ")"},
		{"dateFilter", "$__dateFilter( day )", "day >= toDate('2026-11-18') AND day <= toDate('2026-11-25')"},
		{"dt", "$__dt(d, t)", "(d >= toDate('2026-11-18') AND d <= toDate('2026-11-25')) AND (t >= toDateTime(" + fs + ") AND t <= toDateTime(" + ts + "))"},
		{"timeInterval", "$__timeInterval(minute)", "toStartOfInterval(toDateTime(minute), INTERVAL 600 second)"},
		{"timeInterval_ms", "$__timeInterval_ms(created_at)", "toStartOfInterval(toDateTime64(created_at, 3), INTERVAL 600000 millisecond)"},
		{"interval_s", "$__interval_s", "600"},
		{"from and to", "$__fromTime $__toTime $__fromTime_ms $__toTime_ms",
			"toDateTime(" + fs + ") toDateTime(" + ts + ") fromUnixTimestamp64Milli(" + fms + ") fromUnixTimestamp64Milli(" + tms + ")"},
		{"conditionalAll on All", "WHERE $__conditionalAll(kind IN ($kind), $kind) AND x", "WHERE 1=1 AND x"},
		{"conditionalAll on a value", "WHERE $__conditionalAll(kind IN ($one), ${one})", "WHERE kind IN ('sms_attempt')"},
		{"two conditionalAll", "$__conditionalAll(a IN ($one), $one) OR $__conditionalAll(b IN ($kind), $kind)", "a IN ('sms_attempt') OR 1=1"},
		{"single value unquoted", "LIMIT $min", "LIMIT 3"},
		{"singlequote", "facility_id = ${facility:singlequote}", "facility_id = 'cp-laon'"},
		{"sqlstring of All", "kind IN (${kind:sqlstring})", "kind IN ('call_attempt','mas_attach')"},
		{"All with the plugin's format", "kind IN ($kind)", "kind IN ('call_attempt','mas_attach')"},
		{"grafana built-ins", "$__interval $__interval_ms", "10m 600000"},
		{"unknown names left", "$nope ${__rate_interval}", "$nope ${__rate_interval}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandQuery(tt.in, env)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("nested argument refused", func(t *testing.T) {
		_, err := expandQuery("$__timeFilter(toDateTime(x))", env)
		require.ErrorIs(t, err, errMacroArgs)
	})
	t.Run("conditionalAll with one argument", func(t *testing.T) {
		_, err := expandQuery("$__conditionalAll(a)", env)
		require.Error(t, err)
	})
}
