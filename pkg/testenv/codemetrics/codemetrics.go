// Package codemetrics reads, from the Go source of the repository, the Prometheus metrics the
// services register: their full names and label names. The tests of what reads those metrics
// (deploy/grafana's dashboards, deploy/prometheus's alerting rules, deploy/validate's KEDA
// triggers) check every name and label against it, so that none of them drifts from the code.
//
// A metric is a prometheus.…Opts{Name: …} literal in a non-test file:
//   - in pkg/, a full vigie_ name ("vigie_kafka_consumer_lag_messages", "vigie_ready") is the
//     same series in every service that imports the library; a Name computed as
//     metricPrefix(name) + "x" (pkg/service) is vigie_<service>_x for every service that
//     imports pkg/service;
//   - in services/<svc>/, a full vigie_<svc>_ name, or a name without it in a service that
//     registers through pkg/service's Registerer (or wraps its registry with the prefix literal
//     "vigie_<svc>_"), is vigie_<svc>_<name>; so are the unprefixed metrics of the pkg/
//     libraries such a service imports.
//
// Labels are the variable labels of a …Vec (a []string literal, or a variable assigned one, as
// the constructor's second argument) and the constant labels (a prometheus.Labels literal or a
// variable assigned one).
package codemetrics

import (
	"fmt"
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
)

// Metric is a metric as the Go code registers it.
type Metric struct {
	Name   string
	Labels map[string]bool // variable and constant label names
	Where  string          // file:line of its Opts literal
}

// Defined reads the metrics the code under root/services and root/pkg registers, by full name.
func Defined(root string) (map[string]Metric, error) {
	services, err := readTree(filepath.Join(root, "services"))
	if err != nil {
		return nil, err
	}
	libs, err := readTree(filepath.Join(root, "pkg"))
	if err != nil {
		return nil, err
	}
	defined := map[string]Metric{}
	for _, l := range libs {
		for _, m := range l.metrics {
			if strings.HasPrefix(m.Name, "vigie_") {
				defined[m.Name] = m
			}
		}
	}
	for svc, s := range services {
		prefix := "vigie_" + strings.ReplaceAll(svc, "-", "_") + "_"
		wrapped := s.prefixes[prefix] || s.imports["service"]
		for _, m := range s.metrics {
			switch {
			case strings.HasPrefix(m.Name, prefix):
				defined[m.Name] = m
			case strings.HasPrefix(m.Name, "vigie_"): // another full name, e.g. vigie_build_info
				defined[m.Name] = m
			case wrapped && !strings.HasPrefix(m.Name, "+"):
				m.Name = prefix + m.Name
				defined[m.Name] = m
			}
		}
		if !wrapped {
			continue
		}
		for lib := range s.imports {
			for _, m := range libs[lib].metricsOrNil() {
				switch {
				case strings.HasPrefix(m.Name, "vigie_"):
				case strings.HasPrefix(m.Name, "+"): // metricPrefix(name) + "x"
					if lib == "service" {
						m.Name = prefix + strings.TrimPrefix(m.Name, "+")
						defined[m.Name] = m
					}
				default:
					m.Name = prefix + m.Name
					defined[m.Name] = m
				}
			}
		}
	}
	return defined, nil
}

// Lookup finds name, or the histogram or summary that name's _bucket, _sum or _count stands for.
func Lookup(defined map[string]Metric, name string) (Metric, bool) {
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
	return Metric{}, false
}

// Names lists the defined names, sorted (for messages).
func Names(defined map[string]Metric) []string {
	out := make([]string, 0, len(defined))
	for k := range defined {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// folder is what one top folder (a service, or a pkg/ library) defines.
type folder struct {
	metrics  []Metric
	prefixes map[string]bool // string literals like "vigie_<service>_"
	imports  map[string]bool // pkg/ libraries imported
}

func (f *folder) metricsOrNil() []Metric {
	if f == nil {
		return nil
	}
	return f.metrics
}

var prefixLiteral = regexp.MustCompile(`^vigie_[a-z0-9_]+_$`)

// readTree parses the non-test Go files under dir, grouped by their first folder.
func readTree(dir string) (map[string]*folder, error) {
	out := map[string]*folder{}
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
			g = &folder{prefixes: map[string]bool{}, imports: map[string]bool{}}
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
	if err != nil {
		return nil, fmt.Errorf("read metrics under %s: %w", dir, err)
	}
	return out, nil
}

// fileMetrics finds the prometheus.…Opts literals of a file with their labels.
func fileMetrics(fset *token.FileSet, f *ast.File) []Metric {
	// Label sets assigned to a variable: labels := prometheus.Labels{"topic": …}.
	labelVars := map[string]map[string]bool{}
	// Label name lists assigned to a variable: gt := []string{"group", "topic"}.
	listVars := map[string]*ast.CompositeLit{}
	ast.Inspect(f, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
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
		return true
	})
	seen := map[*ast.CompositeLit]bool{}
	var out []Metric
	add := func(opts *ast.CompositeLit, vec ast.Expr) {
		seen[opts] = true
		m := Metric{Labels: map[string]bool{}, Where: fset.Position(opts.Pos()).String()}
		for _, el := range opts.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			switch {
			case key == nil:
			case key.Name == "Name":
				switch v := kv.Value.(type) {
				case *ast.BasicLit:
					m.Name, _ = strconv.Unquote(v.Value)
				case *ast.BinaryExpr: // metricPrefix(name) + "reloads_total"
					if lit, ok := v.Y.(*ast.BasicLit); ok {
						if _, isCall := v.X.(*ast.CallExpr); isCall {
							s, _ := strconv.Unquote(lit.Value)
							m.Name = "+" + s
						}
					}
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
			if opts, ok := optsLit(call.Args[0]); ok {
				var vec ast.Expr
				if len(call.Args) > 1 {
					vec = call.Args[1]
				}
				add(opts, vec)
			}
		}
		if e, ok := n.(ast.Expr); ok {
			if opts, ok := optsLit(e); ok && !seen[opts] {
				add(opts, nil)
			}
		}
		return true
	})
	return out
}

// optsLit is e as a prometheus.…Opts literal (or its address).
func optsLit(e ast.Expr) (*ast.CompositeLit, bool) {
	if u, ok := e.(*ast.UnaryExpr); ok {
		e = u.X
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, false
	}
	sel, ok := lit.Type.(*ast.SelectorExpr)
	if !ok {
		return nil, false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return lit, ok && pkg.Name == "prometheus" && strings.HasSuffix(sel.Sel.Name, "Opts")
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
