package grafana

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/testenv"
)

// codeMetric is a metric as the Go code registers it: its full name and its label names
// (variable labels of a …Vec and constant labels).
type codeMetric struct {
	Name   string
	Labels map[string]bool
	Where  string // file:line
}

// Labels every series carries that no code declares: Prometheus's target labels, and a
// histogram's bucket bound.
var implicitLabels = map[string]bool{"job": true, "instance": true, "le": true}

var (
	vigieMetric = regexp.MustCompile(`\bvigie_[a-z0-9_]+\b`)
	// A selector right after a metric name: vigie_x{a="b", c!~"d"}.
	metricSelector = regexp.MustCompile(`\b(vigie_[a-z0-9_]+)\{([^}]*)\}`)
	selectorLabel  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byClause       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// TestPrometheusMetricsExist checks that every vigie_* metric a Prometheus panel reads is
// defined in the Go code of the services, with the labels the panel groups or filters by, so
// that the dashboards do not drift from the code. A metric is a prometheus.…Opts{Name: …}
// literal: a full vigie_<service>_ name, or a name without it in a service that registers
// through pkg/service's Registerer (or prometheus.WrapRegistererWithPrefix("vigie_<service>_", …)),
// or a full vigie_ name in a pkg/ library (e.g. pkg/kafka's vigie_kafka_consumer_* metrics).
func TestPrometheusMetricsExist(t *testing.T) {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	defined := definedMetrics(t, root)
	require.NotEmpty(t, defined)
	checked := 0
	for _, d := range loadDashboards(t) {
		for _, tg := range targets(d) {
			if tg.DSType != prometheusType {
				continue
			}
			where := d.UID + " panel " + strconv.Quote(tg.Panel) + " query " + tg.RefID
			var used []codeMetric
			for _, name := range vigieMetric.FindAllString(tg.Expr, -1) {
				m, ok := lookupMetric(defined, name)
				require.True(t, ok, "%s reads %s, which no Go code defines; defined: %s",
					where, name, strings.Join(sortedKeys(defined), ", "))
				used = append(used, m)
				checked++
			}
			for _, sel := range metricSelector.FindAllStringSubmatch(tg.Expr, -1) {
				m, _ := lookupMetric(defined, sel[1])
				for _, l := range selectorLabel.FindAllStringSubmatch(sel[2], -1) {
					require.True(t, m.Labels[l[1]] || implicitLabels[l[1]],
						"%s filters %s on label %q, which %s does not have (%s)", where, sel[1], l[1], m.Name, m.Where)
				}
			}
			for _, by := range byClause.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" || implicitLabels[l] {
						continue
					}
					for _, m := range used {
						require.True(t, m.Labels[l], "%s groups by label %q, which %s does not have (%s)", where, l, m.Name, m.Where)
					}
				}
			}
		}
	}
	require.NotZero(t, checked, "no Prometheus metric found in the dashboards")
}

// lookupMetric finds name, or the histogram or summary name+_bucket/_sum/_count stands for.
func lookupMetric(defined map[string]codeMetric, name string) (codeMetric, bool) {
	if m, ok := defined[name]; ok {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := defined[base]; ok {
				return m, true
			}
		}
	}
	return codeMetric{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// goPackageMetrics is what one top folder (a service, or a pkg/ library) defines.
type goPackageMetrics struct {
	metrics  []codeMetric
	prefixes map[string]bool // string literals like "vigie_<service>_"
	imports  map[string]bool // pkg/ libraries imported
}

var prefixLiteral = regexp.MustCompile(`^vigie_[a-z0-9]+_$`)

// definedMetrics reads the metrics the services register, by their full names.
func definedMetrics(t *testing.T, root string) map[string]codeMetric {
	t.Helper()
	services := readMetrics(t, filepath.Join(root, "services"))
	libs := readMetrics(t, filepath.Join(root, "pkg"))
	defined := map[string]codeMetric{}
	// A library metric with its full name (pkg/kafka's vigie_kafka_consumer_*, pkg/service's
	// vigie_build_info) is the same series in every service that imports the library.
	for _, l := range libs {
		for _, m := range l.metrics {
			if strings.HasPrefix(m.Name, "vigie_") {
				defined[m.Name] = m
			}
		}
	}
	for svc, s := range services {
		prefix := "vigie_" + svc + "_"
		// pkg/service's Registerer prefixes a service's metrics with vigie_<service>_.
		wrapped := s.prefixes[prefix] || s.imports["service"]
		for _, m := range s.metrics {
			switch {
			case strings.HasPrefix(m.Name, prefix):
				defined[m.Name] = m
			case wrapped:
				m.Name = prefix + m.Name
				defined[m.Name] = m
			}
		}
		if !wrapped {
			continue
		}
		for lib := range s.imports {
			for _, m := range libs[lib].metrics {
				if strings.HasPrefix(m.Name, "vigie_") {
					continue
				}
				m.Name = prefix + m.Name
				defined[m.Name] = m
			}
		}
	}
	return defined
}

// readMetrics parses the non-test Go files under dir, grouped by their first folder.
func readMetrics(t *testing.T, dir string) map[string]*goPackageMetrics {
	t.Helper()
	out := map[string]*goPackageMetrics{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		key := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		g := out[key]
		if g == nil {
			g = &goPackageMetrics{prefixes: map[string]bool{}, imports: map[string]bool{}}
			out[key] = g
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			return nil // a teammate's file mid-edit: what it defines is not final anyway
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if lib, ok := strings.CutPrefix(p, "github.com/vigie/vigie/pkg/"); ok {
				g.imports[strings.SplitN(lib, "/", 2)[0]] = true
			}
		}
		g.metrics = append(g.metrics, fileMetrics(fset, f)...)
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && prefixLiteral.MatchString(s) {
					g.prefixes[s] = true
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	return out
}

// fileMetrics finds the prometheus.…Opts literals of a file, with their constant labels and,
// when the literal is the first argument of a call whose second is a []string literal (the
// New…Vec constructors), the variable labels.
func fileMetrics(fset *token.FileSet, f *ast.File) []codeMetric {
	// Label sets assigned to a variable: labels := prometheus.Labels{"topic": …}.
	labelVars := map[string]map[string]bool{}
	// Label name lists assigned to a variable: gt := []string{"group", "topic"}.
	listVars := map[string]*ast.CompositeLit{}
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == len(as.Rhs) {
			for i, rhs := range as.Rhs {
				id, ok := as.Lhs[i].(*ast.Ident)
				if !ok {
					continue
				}
				if isPrometheusType(rhs, "Labels") {
					labelVars[id.Name] = mapKeys(rhs.(*ast.CompositeLit))
				}
				if lit, ok := rhs.(*ast.CompositeLit); ok {
					if at, ok := lit.Type.(*ast.ArrayType); ok {
						if el, ok := at.Elt.(*ast.Ident); ok && el.Name == "string" {
							listVars[id.Name] = lit
						}
					}
				}
			}
		}
		return true
	})
	seen := map[*ast.CompositeLit]bool{}
	var out []codeMetric
	add := func(opts *ast.CompositeLit, vec ast.Expr) {
		seen[opts] = true
		m := codeMetric{Labels: map[string]bool{}, Where: fset.Position(opts.Pos()).String()}
		for _, el := range opts.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			switch {
			case key == nil:
			case key.Name == "Name":
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					m.Name, _ = strconv.Unquote(lit.Value)
				}
			case key.Name == "ConstLabels":
				switch v := kv.Value.(type) {
				case *ast.CompositeLit:
					for k := range mapKeys(v) {
						m.Labels[k] = true
					}
				case *ast.Ident:
					for k := range labelVars[v.Name] {
						m.Labels[k] = true
					}
				}
			}
		}
		if id, ok := vec.(*ast.Ident); ok && listVars[id.Name] != nil {
			vec = listVars[id.Name]
		}
		if list, ok := vec.(*ast.CompositeLit); ok {
			for _, el := range list.Elts {
				if lit, ok := el.(*ast.BasicLit); ok {
					s, _ := strconv.Unquote(lit.Value)
					m.Labels[s] = true
				}
			}
		}
		if m.Name != "" {
			out = append(out, m)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && len(call.Args) > 0 {
			if opts, ok := call.Args[0].(*ast.CompositeLit); ok && isOpts(opts) {
				var vec ast.Expr
				if len(call.Args) > 1 {
					vec = call.Args[1]
				}
				add(opts, vec)
			}
		}
		if opts, ok := n.(*ast.CompositeLit); ok && isOpts(opts) && !seen[opts] {
			add(opts, nil)
		}
		return true
	})
	return out
}

func isOpts(lit *ast.CompositeLit) bool {
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "prometheus" && strings.HasSuffix(sel.Sel.Name, "Opts")
}

func isPrometheusType(e ast.Expr, name string) bool {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "prometheus" && sel.Sel.Name == name
}

func mapKeys(lit *ast.CompositeLit) map[string]bool {
	out := map[string]bool{}
	for _, el := range lit.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.BasicLit); ok {
				s, _ := strconv.Unquote(k.Value)
				out[s] = true
			}
		}
	}
	return out
}
