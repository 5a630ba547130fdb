package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
)

// Every panel query of deploy/grafana's dashboards, sent over HTTP by the analyst role as the
// Grafana ClickHouse plugin in HTTP mode sends it (clickhouse-go with Protocol HTTP: Native answers with
// client_protocol_version), and again as JSON cut into small blocks, on the schema of
// schemas/clickhouse with a few thousand detections. The macro expansion here is a plain
// one (the plugin's exact expansion is tested in deploy/grafana): each macro becomes the
// ClickHouse expression the plugin writes, every variable is All or its first value.
func TestDashboardQueriesOverHTTP(t *testing.T) {
	ctx := context.Background()
	dashboards, err := filepath.Glob(mustRepoFile(t, "deploy/grafana/dashboards") + "/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, dashboards)
	db := vigieDatabase(t)
	// As the dashboards' data source does: the analyst role.
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: []string{chserverHTTPAddr}, Protocol: clickhouse.HTTP,
		Auth:     clickhouse.Auth{Database: db, Username: analystUser, Password: analystPassword},
		Settings: clickhouse.Settings{"log_comment": "grafana:vigie-dashboards"},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	to := time.Now().UTC()
	from := to.Add(-7 * 24 * time.Hour)
	queries := 0
	for _, path := range dashboards {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		var d struct {
			Panels     []json.RawMessage
			Templating struct{ List []map[string]any }
		}
		require.NoError(t, json.Unmarshal(raw, &d))
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			name, _ := v["name"].(string)
			switch v["type"] {
			case "custom":
				q, _ := v["query"].(string)
				vars[name] = strings.TrimSpace(strings.Split(q, ",")[0])
			default:
				vars[name] = "FAC1"
			}
		}
		for _, sql := range panelQueries(d.Panels) {
			queries++
			expanded := expandPanelQuery(sql, from, to, vars)
			t.Run(fmt.Sprintf("%s/%d", filepath.Base(path), queries), func(t *testing.T) {
				rows, err := conn.Query(ctx, expanded)
				require.NoError(t, err, expanded)
				n := 0
				for rows.Next() {
					n++
				}
				require.NoError(t, rows.Err(), expanded)
				require.NoError(t, rows.Close())
				// The same query as JSON in blocks of 3 rows: one document.
				status, body, err := httpQueryAs(ctx, analystUser, analystPassword, chserverHTTPAddr, url.Values{"database": {db}, "max_block_size": {"3"}}.Encode(), expanded+" FORMAT JSON")
				require.NoError(t, err)
				require.Equal(t, 200, status, body)
				var doc struct{ Rows int }
				require.NoError(t, json.Unmarshal([]byte(body), &doc), expanded)
				require.Equal(t, n, doc.Rows, expanded)
			})
		}
	}
	t.Logf("%d panel queries", queries)
	require.Greater(t, queries, 10)
}

func mustRepoFile(t *testing.T, p string) string {
	t.Helper()
	f, err := repoFile(p)
	require.NoError(t, err)
	return f
}

// applySchema runs schemas/clickhouse's migrations on db, as the migrate command does.
func applySchema(t *testing.T, conn interface {
	Exec(context.Context, string, ...any) error
}, db string) {
	t.Helper()
	files, err := filepath.Glob(mustRepoFile(t, "schemas/clickhouse") + "/0*.sql")
	require.NoError(t, err)
	sort.Strings(files)
	comment := regexp.MustCompile(`(?m)^\s*--.*$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text := strings.ReplaceAll(comment.ReplaceAllString(string(b), ""), "{db}", "`"+db+"`")
		for _, stmt := range strings.Split(text, ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			require.NoError(t, conn.Exec(context.Background(), stmt), "%s:\n%s", filepath.Base(f), stmt)
		}
	}
}

// panelQueries returns the ClickHouse queries of panels, rows' nested panels included.
func panelQueries(panels []json.RawMessage) []string {
	var out []string
	for _, raw := range panels {
		var p struct {
			Panels  []json.RawMessage
			Targets []struct {
				RawSQL     string `json:"rawSql"`
				Datasource struct{ Type string }
			}
		}
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		for _, tg := range p.Targets {
			if tg.RawSQL != "" && (tg.Datasource.Type == "" || strings.Contains(tg.Datasource.Type, "clickhouse")) {
				out = append(out, tg.RawSQL)
			}
		}
		out = append(out, panelQueries(p.Panels)...)
	}
	return out
}

// expandPanelQuery writes the macros and variables of a panel query as the plugin does, with
// every multi-value variable at All.
func expandPanelQuery(q string, from, to time.Time, vars map[string]string) string {
	const cond = "$__conditionalAll("
	for i := strings.LastIndex(q, cond); i >= 0; i = strings.LastIndex(q, cond) {
		depth, j := 1, i+len(cond)
		for ; j < len(q) && depth > 0; j++ {
			switch q[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
		}
		q = q[:i] + "1=1" + q[j:]
	}
	fs, ts := from.Unix(), to.Unix()
	fms, tms := from.UnixMilli(), to.UnixMilli()
	interval := max(int64(to.Sub(from).Seconds())/1000, 1)
	macro := func(name, format string) {
		re := regexp.MustCompile(`\$` + name + `\(([^)]*)\)`)
		q = re.ReplaceAllStringFunc(q, func(m string) string {
			arg := re.FindStringSubmatch(m)[1]
			return strings.ReplaceAll(format, "ARG", arg)
		})
	}
	macro("__timeFilter_ms", fmt.Sprintf("ARG >= fromUnixTimestamp64Milli(%d) AND ARG <= fromUnixTimestamp64Milli(%d)", fms, tms))
	macro("__timeFilter", fmt.Sprintf("ARG >= toDateTime(%d) AND ARG <= toDateTime(%d)", fs, ts))
	macro("__dateFilter", fmt.Sprintf("ARG >= toDate('%s') AND ARG <= toDate('%s')", from.Format(time.DateOnly), to.Format(time.DateOnly)))
	macro("__timeInterval_ms", fmt.Sprintf("toStartOfInterval(toDateTime64(ARG, 3), INTERVAL %d millisecond)", interval*1000))
	macro("__timeInterval", fmt.Sprintf("toStartOfInterval(toDateTime(ARG), INTERVAL %d second)", interval))
	q = strings.NewReplacer(
		"$__fromTime_ms", fmt.Sprintf("fromUnixTimestamp64Milli(%d)", fms),
		"$__toTime_ms", fmt.Sprintf("fromUnixTimestamp64Milli(%d)", tms),
		"$__fromTime", fmt.Sprintf("toDateTime(%d)", fs),
		"$__toTime", fmt.Sprintf("toDateTime(%d)", ts),
		"$__interval_s", fmt.Sprint(interval),
		"$__from", fmt.Sprint(fms),
		"$__to", fmt.Sprint(tms),
	).Replace(q)
	for name, v := range vars {
		q = strings.NewReplacer("${"+name+":singlequote}", "'"+v+"'", "${"+name+"}", "'"+v+"'").Replace(q)
		q = regexp.MustCompile(`\$`+name+`\b`).ReplaceAllString(q, v)
	}
	return q
}
