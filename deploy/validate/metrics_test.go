package validate

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// codeMetric is a metric as the Go code registers it: its full name and label names.
type codeMetric struct {
	Name   string
	Labels map[string]bool
	Where  string
}

// definedMetrics reads the metrics the Go code registers, by their full names. A
// prometheus.…Opts{Name: …} literal in services/<svc>/ is vigie_<svc>_<name> (pkg/service's
// Registerer prefixes it) unless it already starts with "vigie_"; in pkg/, names are full
// ("vigie_kafka_…", "vigie_build_info"), and a Name computed as metricPrefix(name) + "x"
// (pkg/service) is vigie_<svc>_x for every service.
func definedMetrics(t *testing.T) map[string]codeMetric {
	t.Helper()
	defined := map[string]codeMetric{}
	services, err := os.ReadDir(path(t, "services"))
	require.NoError(t, err)
	var names []string
	for _, s := range services {
		if s.IsDir() {
			names = append(names, s.Name())
		}
	}
	for _, svc := range names {
		for _, m := range readMetrics(t, path(t, "services", svc)) {
			if m.Name == "" {
				continue
			}
			if !strings.HasPrefix(m.Name, "vigie_") {
				m.Name = "vigie_" + svc + "_" + m.Name
			}
			defined[m.Name] = m
		}
	}
	for _, m := range readMetrics(t, path(t, "pkg")) {
		switch {
		case strings.HasPrefix(m.Name, "vigie_"):
			defined[m.Name] = m
		case strings.HasPrefix(m.Name, "+"): // prefixed at run time by the service's name
			for _, svc := range names {
				mm := m
				mm.Name = "vigie_" + svc + "_" + strings.TrimPrefix(m.Name, "+")
				defined[mm.Name] = mm
			}
		}
	}
	return defined
}

// lookupMetric finds name, or the histogram name that name+_bucket/_sum/_count stands for.
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

// readMetrics parses the non-test Go files under dir and returns their metric literals.
func readMetrics(t *testing.T, dir string) []codeMetric {
	t.Helper()
	var out []codeMetric
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil // a file mid-edit by someone else: what it defines is not final anyway
		}
		out = append(out, fileMetrics(fset, f)...)
		return nil
	})
	require.NoError(t, err)
	return out
}

// fileMetrics finds the prometheus.…Opts literals of a file with their constant labels and,
// when the literal is the first argument of a call whose second is a []string literal (the
// New…Vec constructors), their variable labels.
func fileMetrics(fset *token.FileSet, f *ast.File) []codeMetric {
	var out []codeMetric
	seen := map[*ast.CompositeLit]bool{}
	add := func(opts *ast.CompositeLit, vec ast.Expr) {
		seen[opts] = true
		m := codeMetric{Labels: map[string]bool{}, Where: fset.Position(opts.Pos()).String()}
		for _, el := range opts.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			if key == nil {
				continue
			}
			switch key.Name {
			case "Name":
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
			case "ConstLabels":
				if cl, ok := kv.Value.(*ast.CompositeLit); ok {
					for _, el := range cl.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if lit, ok := kv.Key.(*ast.BasicLit); ok {
								s, _ := strconv.Unquote(lit.Value)
								m.Labels[s] = true
							}
						}
					}
				}
			}
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
	isOpts := func(e ast.Expr) (*ast.CompositeLit, bool) {
		if u, ok := e.(*ast.UnaryExpr); ok {
			e = u.X
		}
		cl, ok := e.(*ast.CompositeLit)
		if !ok {
			return nil, false
		}
		sel, ok := cl.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return nil, false
		}
		return cl, true
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok && len(call.Args) > 0 {
			if cl, ok := isOpts(call.Args[0]); ok {
				var vec ast.Expr
				if len(call.Args) > 1 {
					vec = call.Args[1]
				}
				add(cl, vec)
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		if cl, ok := isOpts(asExpr(n)); ok && !seen[cl] {
			add(cl, nil)
		}
		return true
	})
	return out
}

func asExpr(n ast.Node) ast.Expr {
	e, _ := n.(ast.Expr)
	return e
}

func TestDefinedMetricsFound(t *testing.T) {
	d := definedMetrics(t)
	for _, name := range []string{"vigie_kafka_consumer_lag_messages", "vigie_build_info", "vigie_writer_rows_written_total", "vigie_ingest_reloads_total"} {
		_, ok := d[name]
		require.True(t, ok, "%s not found in the Go code: the metric reader is broken", name)
	}
	require.True(t, d["vigie_kafka_consumer_lag_messages"].Labels["partition"])
}
