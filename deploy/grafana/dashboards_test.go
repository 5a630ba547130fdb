package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdkdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/vigie/vigie/pkg/chmigrate"
	"github.com/vigie/vigie/pkg/testenv"
	chschema "github.com/vigie/vigie/schemas/clickhouse"
)

const (
	clickhouseType = "grafana-clickhouse-datasource"
	prometheusType = "prometheus"
	dashboardsDir  = "dashboards"
	datasourcesYML = "provisioning/datasources/vigie.yaml"
	providersYML   = "provisioning/dashboards/vigie.yaml"
)

// dashboard is one dashboard file, decoded loosely: the tests read what Grafana reads.
type dashboard struct {
	File  string
	UID   string         `json:"uid"`
	Title string         `json:"title"`
	Time  map[string]any `json:"time"`
	Raw   map[string]any
}

// target is one query of one panel (or a template variable's query).
type target struct {
	Dashboard, Panel, PanelType, RefID string
	PanelID                            int
	DSType, DSUID                      string
	QueryType                          string
	Format                             int
	SQL, Expr                          string
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no dashboards in %s", dashboardsDir)
	var out []dashboard
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(b, &d), "%s is not valid JSON", p)
		require.NoError(t, json.Unmarshal(b, &d.Raw))
		d.File = p
		out = append(out, d)
	}
	return out
}

// panels returns every panel, rows' nested panels included.
func panels(d dashboard) []map[string]any {
	var out []map[string]any
	var walk func([]any)
	walk = func(list []any) {
		for _, p := range list {
			pm, ok := p.(map[string]any)
			if !ok {
				continue
			}
			out = append(out, pm)
			if nested, ok := pm["panels"].([]any); ok {
				walk(nested)
			}
		}
	}
	list, _ := d.Raw["panels"].([]any)
	walk(list)
	return out
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func datasourceOf(m map[string]any) (typ, uid string) {
	ds, _ := m["datasource"].(map[string]any)
	return str(ds, "type"), str(ds, "uid")
}

func targets(d dashboard) []target {
	var out []target
	for _, p := range panels(d) {
		pt, pu := datasourceOf(p)
		list, _ := p["targets"].([]any)
		for _, raw := range list {
			tm, _ := raw.(map[string]any)
			tt, tu := datasourceOf(tm)
			if tt == "" {
				tt, tu = pt, pu
			}
			format, _ := tm["format"].(float64)
			id, _ := p["id"].(float64)
			out = append(out, target{
				Dashboard: d.UID, Panel: str(p, "title"), PanelID: int(id), PanelType: str(p, "type"), RefID: str(tm, "refId"),
				DSType: tt, DSUID: tu, QueryType: str(tm, "queryType"), Format: int(format),
				SQL: str(tm, "rawSql"), Expr: str(tm, "expr"),
			})
		}
	}
	return out
}

// templateVars returns the dashboard's template variables, in order.
func templateVars(d dashboard) []map[string]any {
	tpl, _ := d.Raw["templating"].(map[string]any)
	list, _ := tpl["list"].([]any)
	var out []map[string]any
	for _, v := range list {
		if vm, ok := v.(map[string]any); ok {
			out = append(out, vm)
		}
	}
	return out
}

// provisioning is the part of the data source provisioning file the tests check.
type provisioning struct {
	Datasources []struct {
		Name           string            `yaml:"name"`
		UID            string            `yaml:"uid"`
		Type           string            `yaml:"type"`
		URL            string            `yaml:"url"`
		JSONData       map[string]any    `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

func loadProvisioning(t *testing.T) provisioning {
	t.Helper()
	b, err := os.ReadFile(datasourcesYML)
	require.NoError(t, err)
	var p provisioning
	require.NoError(t, yaml.Unmarshal(b, &p))
	return p
}

var (
	knownPanelTypes = map[string]bool{"stat": true, "timeseries": true, "table": true, "geomap": true,
		"bargauge": true, "barchart": true, "piechart": true, "row": true, "text": true}
	// A table named with its database: queries must use the data source's database.
	qualifiedTable = regexp.MustCompile("(?i)\\b(?:FROM|JOIN)\\s+(\\w+|`[^`]+`|\"[^\"]+\")\\s*\\.\\s*[`\"\\w]")
	// FROM/JOIN and a name; a name followed by '(' is a function (WITH FILL FROM f(…)).
	tableRef     = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)(\s*\()?`)
	grantedTable = regexp.MustCompile(`(?i)GRANT\s+SELECT\s+ON\s+\{db\}\.([a-z_][a-z0-9_]*)\s+TO\s+vigie_analyst`)
)

// TestProvisioning checks the data sources and the dashboard provider Grafana loads.
func TestProvisioning(t *testing.T) {
	p := loadProvisioning(t)
	byUID := map[string]int{}
	for i, ds := range p.Datasources {
		byUID[ds.UID] = i
	}
	require.Contains(t, byUID, "vigie-clickhouse")
	require.Contains(t, byUID, "vigie-prometheus")

	ch := p.Datasources[byUID["vigie-clickhouse"]]
	require.Equal(t, clickhouseType, ch.Type)
	require.Equal(t, "native", ch.JSONData["protocol"], "the native protocol, as the services use")
	require.Equal(t, "${VIGIE_CLICKHOUSE_USER}", ch.JSONData["username"], "the read-only analyst user of README.md")
	for _, key := range []string{"host", "port", "defaultDatabase"} {
		require.NotEmpty(t, ch.JSONData[key], "jsonData.%s", key)
	}
	require.NotEmpty(t, ch.SecureJSONData["password"], "the password belongs in secureJsonData")
	require.NotContains(t, ch.JSONData, "password")

	prom := p.Datasources[byUID["vigie-prometheus"]]
	require.Equal(t, prometheusType, prom.Type)
	require.NotEmpty(t, prom.URL)

	b, err := os.ReadFile(providersYML)
	require.NoError(t, err)
	var providers struct {
		Providers []struct {
			Type    string         `yaml:"type"`
			Options map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(b, &providers))
	require.Len(t, providers.Providers, 1)
	require.Equal(t, "file", providers.Providers[0].Type)
	require.NotEmpty(t, providers.Providers[0].Options["path"])
}

// TestDashboardsWellFormed checks what Grafana needs to load each dashboard and run its
// queries on the provisioned data sources, and that queries only read tables the analyst
// role may read, in the data source's database.
func TestDashboardsWellFormed(t *testing.T) {
	p := loadProvisioning(t)
	dsType := map[string]string{}
	for _, ds := range p.Datasources {
		dsType[ds.UID] = ds.Type
	}
	granted := map[string]bool{}
	for _, m := range grantedTable.FindAllStringSubmatch(chschema.AnalystRole, -1) {
		granted[m[1]] = true
	}
	require.NotEmpty(t, granted, "no grants found in the analyst role")

	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(filepath.Base(d.File), func(t *testing.T) {
			require.NotEmpty(t, d.UID)
			require.LessOrEqual(t, len(d.UID), 40, "Grafana limits uids to 40 characters")
			require.NotContains(t, uids, d.UID, "uid also used by %s", uids[d.UID])
			uids[d.UID] = d.File
			require.NotEmpty(t, d.Title)
			require.Nil(t, d.Raw["id"], "a provisioned dashboard has no id")
			sv, _ := d.Raw["schemaVersion"].(float64)
			require.GreaterOrEqual(t, sv, 36.0, "schemaVersion")
			require.NotEmpty(t, d.Time["from"])

			ids := map[float64]bool{}
			for _, pm := range panels(d) {
				title, typ := str(pm, "title"), str(pm, "type")
				require.True(t, knownPanelTypes[typ], "panel %q: type %q", title, typ)
				id, _ := pm["id"].(float64)
				require.NotZero(t, id, "panel %q has no id", title)
				require.False(t, ids[id], "panel id %v used twice", id)
				ids[id] = true
				gp, _ := pm["gridPos"].(map[string]any)
				w, _ := gp["w"].(float64)
				x, _ := gp["x"].(float64)
				h, _ := gp["h"].(float64)
				require.True(t, w >= 1 && h >= 1 && x >= 0 && x+w <= 24, "panel %q: gridPos %v", title, gp)
				if typ != "row" && typ != "text" {
					list, _ := pm["targets"].([]any)
					require.NotEmpty(t, list, "panel %q has no query", title)
				}
			}
			refs := map[string]bool{}
			for _, tg := range targets(d) {
				where := fmt.Sprintf("panel %q query %s", tg.Panel, tg.RefID)
				require.NotEmpty(t, tg.RefID, where)
				key := fmt.Sprintf("%d/%s", tg.PanelID, tg.RefID)
				require.False(t, refs[key], "%s: refId used twice", where)
				refs[key] = true
				require.Equal(t, dsType[tg.DSUID], tg.DSType, "%s: data source %s/%s is not provisioned", where, tg.DSType, tg.DSUID)
				switch tg.DSType {
				case clickhouseType:
					checkSQL(t, where, tg.SQL, granted)
					switch tg.QueryType {
					case "timeseries":
						require.Equal(t, 0, tg.Format, "%s: time series format", where)
					case "table":
						require.Equal(t, 1, tg.Format, "%s: table format", where)
					default:
						require.Failf(t, "bad queryType", "%s: queryType %q", where, tg.QueryType)
					}
				case prometheusType:
					require.NotEmpty(t, tg.Expr, where)
				}
			}
			for _, v := range templateVars(d) {
				if str(v, "type") != "query" {
					continue
				}
				typ, uid := datasourceOf(v)
				require.Equal(t, dsType[uid], typ, "variable %s: data source", str(v, "name"))
				checkSQL(t, "variable "+str(v, "name"), variableQuery(v), granted)
			}
		})
	}
}

// TestDashboardsMatchGrafanaSchema decodes each dashboard strictly with the Grafana
// Foundation SDK (types generated from Grafana's dashboard and panel schemas): an unknown
// field, a wrongly typed one or a missing required one in the dashboard or in a panel's
// options fails, as a typo would in a hand-edited file.
func TestDashboardsMatchGrafanaSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, d := range loadDashboards(t) {
		t.Run(filepath.Base(d.File), func(t *testing.T) {
			b, err := os.ReadFile(d.File)
			require.NoError(t, err)
			// The classic (v1) dashboard JSON is what file provisioning loads in Grafana 11 and 12.
			//lint:ignore SA1019 the v2 schema is a different format
			var sd sdkdashboard.Dashboard
			require.NoError(t, noBuildErrors(sd.UnmarshalJSONStrict(b)))
			require.NoError(t, noBuildErrors(sd.Validate()))
		})
	}
}

// noBuildErrors turns the SDK's empty error list (a non-nil error holding nothing) into nil.
func noBuildErrors(err error) error {
	if be, ok := err.(cog.BuildErrors); ok && len(be) == 0 {
		return nil
	}
	return err
}

func checkSQL(t *testing.T, where, sql string, granted map[string]bool) {
	t.Helper()
	require.NotEmpty(t, sql, where)
	require.False(t, qualifiedTable.MatchString(sql), "%s: names a database (%s): use the data source's",
		where, qualifiedTable.FindString(sql))
	for _, m := range tableRef.FindAllStringSubmatch(sql, -1) {
		if m[2] != "" {
			continue
		}
		require.True(t, granted[m[1]], "%s: reads %s, which the analyst role may not read", where, m[1])
	}
}

func variableQuery(v map[string]any) string {
	switch q := v["query"].(type) {
	case string:
		return q
	case map[string]any:
		return str(q, "rawSql")
	}
	return ""
}

// TestDashboardQueries runs every ClickHouse query of every dashboard, expanded as Grafana
// and the plugin expand it, against demo data on the local ClickHouse server: each query
// must succeed, time series must be shaped as the plugin needs them, and with the default
// variable values every panel must return data.
func TestDashboardQueries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	addr := testenv.ClickHouseAddr(t)
	database := testenv.Name(t, "grafana")

	admin := openClickHouse(t, addr, "default", nil)
	migrations, err := chmigrate.Load(chschema.Migrations)
	require.NoError(t, err)
	_, err = chmigrate.Apply(ctx, admin, database, migrations, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+database+"`")
	})

	now := time.Now().UTC().Truncate(time.Second)
	demo := seedDemo(ctx, t, admin, database, demoSpec{
		Seed: 2025, End: now.Add(-5 * time.Minute), Days: 6, Facilities: 12, Phones: 400, Events: 6000,
	})
	var stored uint64
	require.NoError(t, admin.QueryRow(ctx, "SELECT sum(events) FROM `"+database+"`.detections_per_minute").Scan(&stored))
	require.Equal(t, uint64(demo.Events), stored, "the rollup holds every demo event")

	// The data source's connection: its database and the settings it sends with each query.
	settings := clickhouse.Settings{}
	for _, ds := range loadProvisioning(t).Datasources {
		if ds.UID != "vigie-clickhouse" {
			continue
		}
		custom, _ := ds.JSONData["customSettings"].([]any)
		for _, c := range custom {
			cm, _ := c.(map[string]any)
			settings[fmt.Sprint(cm["setting"])] = fmt.Sprint(cm["value"])
		}
	}
	conn := openClickHouse(t, addr, database, settings)

	for _, d := range loadDashboards(t) {
		t.Run(d.UID, func(t *testing.T) {
			from, err := relativeTime(fmt.Sprint(d.Time["from"]), now)
			require.NoError(t, err)
			env := queryEnv{From: from, To: now, Interval: grafanaInterval(now.Sub(from), 1000), Vars: map[string]*variable{}}
			resolveVariables(ctx, t, conn, d, env)

			scenarios := []struct {
				name     string
				set      func(*variable)
				needData bool
			}{
				{"defaults", func(*variable) {}, true},
				{"one value each", func(v *variable) {
					if v.Multi && len(v.Options) > 0 {
						v.Current = []string{v.Options[0]}
					}
				}, false},
			}
			for i, sc := range scenarios {
				defaults := map[string][]string{}
				changed := false
				for name, v := range env.Vars {
					defaults[name] = v.Current
					sc.set(v)
					changed = changed || !reflect.DeepEqual(defaults[name], v.Current)
				}
				if i > 0 && !changed {
					continue
				}
				for _, tg := range targets(d) {
					if tg.DSType != clickhouseType {
						continue
					}
					t.Run(fmt.Sprintf("%s/%d %s/%s", sc.name, tg.PanelID, tg.Panel, tg.RefID), func(t *testing.T) {
						res := runQuery(ctx, t, conn, tg.SQL, env)
						checkResult(t, tg, res, sc.needData)
					})
				}
				for name, v := range env.Vars {
					v.Current = defaults[name]
				}
			}
		})
	}
}

// resolveVariables sets env.Vars from the dashboard's variables, running query variables on
// conn in order (a later variable may use an earlier one), as Grafana does on load.
func resolveVariables(ctx context.Context, t *testing.T, conn driver.Conn, d dashboard, env queryEnv) {
	t.Helper()
	for _, vm := range templateVars(d) {
		name := str(vm, "name")
		v := &variable{Name: name, AllValue: str(vm, "allValue")}
		v.Multi, _ = vm["multi"].(bool)
		includeAll, _ := vm["includeAll"].(bool)
		switch str(vm, "type") {
		case "query":
			res := runQuery(ctx, t, conn, variableQuery(vm), env)
			require.NotEmpty(t, res.rows, "variable %s has no values", name)
			// One column: value and text; two: the first is the value (CHDatasource.metricFindQuery).
			for _, r := range res.rows {
				v.Options = append(v.Options, fmt.Sprint(r[0]))
			}
		case "custom":
			for _, o := range strings.Split(variableQuery(vm), ",") {
				v.Options = append(v.Options, strings.TrimSpace(o))
			}
		case "textbox", "constant":
			v.Options = []string{variableQuery(vm)}
		default:
			t.Fatalf("variable %s: type %q not handled by the test", name, str(vm, "type"))
		}
		cur, _ := vm["current"].(map[string]any)
		switch val := cur["value"].(type) {
		case string:
			v.Current = []string{val}
		case []any:
			for _, x := range val {
				v.Current = append(v.Current, fmt.Sprint(x))
			}
		}
		// Grafana keeps the saved selection only if the options still hold it; else it selects
		// All, or the first option.
		valid := len(v.Current) > 0
		for _, c := range v.Current {
			valid = valid && (c == allValue && includeAll || slices.Contains(v.Options, c))
		}
		if !valid {
			v.Current = nil
		}
		if len(v.Current) == 0 {
			if includeAll {
				v.Current = []string{allValue}
			} else {
				v.Current = []string{v.Options[0]}
			}
		}
		env.Vars[name] = v
	}
}

type result struct {
	columns []string
	types   []string
	rows    [][]any
}

func runQuery(ctx context.Context, t *testing.T, conn driver.Conn, raw string, env queryEnv) result {
	t.Helper()
	sql, err := expandQuery(raw, env)
	require.NoError(t, err)
	require.False(t, leftover.MatchString(sql), "not expanded: %q in\n%s", leftover.FindString(sql), sql)
	started := time.Now()
	rows, err := conn.Query(ctx, sql)
	require.NoError(t, err, "query:\n%s", sql)
	defer rows.Close()
	var res result
	res.columns = rows.Columns()
	cts := rows.ColumnTypes()
	for _, ct := range cts {
		res.types = append(res.types, ct.DatabaseTypeName())
	}
	for rows.Next() {
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		require.NoError(t, rows.Scan(ptrs...))
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
		}
		res.rows = append(res.rows, row)
	}
	require.NoError(t, rows.Err(), "query:\n%s", sql)
	t.Logf("%d rows in %s", len(res.rows), time.Since(started).Round(time.Millisecond))
	return res
}

// checkResult checks a panel query's result: a time series has a first column "time" of a
// date-time type in ascending order (the plugin turns long frames into wide ones, which
// needs that); a panel that must show data has rows, and a single-row result has a value.
func checkResult(t *testing.T, tg target, res result, needData bool) {
	t.Helper()
	if tg.QueryType == "timeseries" {
		require.NotEmpty(t, res.columns)
		require.Equal(t, "time", res.columns[0], "a time series starts with its time column")
		require.True(t, strings.HasPrefix(res.types[0], "DateTime"), "time column type %s", res.types[0])
		for i := 1; i < len(res.rows); i++ {
			a, b := res.rows[i-1][0].(time.Time), res.rows[i][0].(time.Time)
			require.False(t, b.Before(a), "time series not ordered by time at row %d", i)
		}
	}
	if tg.PanelType == "geomap" {
		require.Contains(t, res.columns, "latitude")
		require.Contains(t, res.columns, "longitude")
	}
	if !needData {
		return
	}
	require.NotEmpty(t, res.rows, "panel %q returned no rows on the demo data", tg.Panel)
	if len(res.rows) == 1 {
		hasValue := false
		for _, v := range res.rows[0] {
			hasValue = hasValue || !isZero(v)
		}
		require.True(t, hasValue, "panel %q returned only zeros: %v", tg.Panel, res.rows[0])
	}
}

func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		return rv.IsNil() || rv.Elem().IsZero()
	}
	return rv.IsZero()
}

// relativeTime resolves Grafana's "now-7d" style times (s, m, h, d, w).
func relativeTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	m := regexp.MustCompile(`^now-(\d+)([smhdw])$`).FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("time %q: only now-N[smhdw] is handled", s)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return now.Add(-time.Duration(n) * unit), nil
}

// grafanaInterval approximates Grafana's interval for a range drawn with maxDataPoints:
// range / points, rounded to Grafana's nice intervals.
func grafanaInterval(span time.Duration, points int) time.Duration {
	raw := span / time.Duration(points)
	nice := []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	best := nice[0]
	for _, n := range nice {
		if math.Abs(float64(n-raw)) < math.Abs(float64(best-raw)) {
			best = n
		}
	}
	return best
}
