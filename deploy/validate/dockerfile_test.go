package validate

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/stretchr/testify/require"
)

// The image targets of the Dockerfile: servers have a health check on their admin port.
var (
	serverTargets = []string{"ingest", "enricher", "writer", "correlator"}
	jobTargets    = []string{"vigiectl", "simulator"}
)

const buildStage = "build"

// dockerfile is the parsed Dockerfile: its stages by name and its global ARGs.
type dockerfile struct {
	stages   []instructions.Stage
	byName   map[string]*instructions.Stage
	metaArgs []instructions.ArgCommand
}

func parseDockerfile(data []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, err
	}
	d := &dockerfile{stages: stages, byName: map[string]*instructions.Stage{}, metaArgs: metaArgs}
	for i := range stages {
		d.byName[stages[i].Name] = &stages[i]
	}
	return d, nil
}

// chain is the target's stages from the base image down to the target.
func (d *dockerfile) chain(target string) ([]*instructions.Stage, error) {
	var out []*instructions.Stage
	for name := target; ; {
		s, ok := d.byName[name]
		if !ok {
			return nil, fmt.Errorf("no stage %q", name)
		}
		out = append([]*instructions.Stage{s}, out...)
		if _, ok := d.byName[s.BaseName]; !ok {
			return out, nil
		}
		if len(out) > 10 {
			return nil, fmt.Errorf("stage %q: FROM chain too long", target)
		}
		name = s.BaseName
	}
}

var goBuildPkg = regexp.MustCompile(`\./(services|deploy)/[a-z0-9/_-]+/cmd/[a-z0-9_-]+`)

// buildPackages are the main packages the build stage's `go build` builds.
func (d *dockerfile) buildPackages() []string {
	var out []string
	for _, c := range d.byName[buildStage].Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			line := strings.Join(r.CmdLine, " ")
			if strings.Contains(line, "go build") {
				out = append(out, goBuildPkg.FindAllString(line, -1)...)
			}
		}
	}
	return out
}

// checkDockerfile returns what is wrong with a Dockerfile against the image rules: a
// multi-stage build whose build stage builds static binaries with the version and revision
// linked in, and targets FROM scratch, non-root, labelled, with a health check for servers
// and an exec-form entrypoint.
func checkDockerfile(data []byte) []string {
	d, err := parseDockerfile(data)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	b, ok := d.byName[buildStage]
	if !ok {
		return []string{"no build stage"}
	}
	if !strings.HasPrefix(b.BaseName, "golang:") {
		bad("build stage FROM %s, want golang:", b.BaseName)
	}
	static := false
	var goBuild string
	for _, c := range b.Commands {
		switch c := c.(type) {
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == "CGO_ENABLED" && kv.Value == "0" {
					static = true
				}
			}
		case *instructions.RunCommand:
			if line := strings.Join(c.CmdLine, " "); strings.Contains(line, "go build") {
				goBuild = line
				if strings.Contains(line, "CGO_ENABLED=0") {
					static = true
				}
			}
		}
	}
	if !static {
		bad("build stage: CGO_ENABLED=0 not set (the binaries must be static for scratch)")
	}
	for _, want := range []string{"-trimpath", "-X github.com/vigie/vigie/pkg/service.version=${VERSION}", "-X github.com/vigie/vigie/pkg/service.revision=${REVISION}"} {
		if !strings.Contains(goBuild, want) {
			bad("build stage: go build without %s", want)
		}
	}
	pkgs := d.buildPackages()
	for _, tg := range append(slices.Clone(serverTargets), jobTargets...) {
		if !slices.Contains(pkgs, "./services/"+tg+"/cmd/"+tg) {
			bad("build stage: go build does not build ./services/%s/cmd/%s", tg, tg)
		}
		chain, err := d.chain(tg)
		if err != nil {
			bad("target %s: %v", tg, err)
			continue
		}
		if chain[0].BaseName != "scratch" {
			bad("target %s: based on %s, want scratch", tg, chain[0].BaseName)
		}
		var user, entry string
		var health *instructions.HealthCheckCommand
		labels := map[string]string{}
		env := map[string]string{}
		copied := false
		for _, s := range chain {
			for _, c := range s.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.LabelCommand:
					for _, kv := range c.Labels {
						labels[kv.Key] = strings.Trim(kv.Value, `"`) // unexpanded: quotes kept
					}
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						env[kv.Key] = kv.Value
					}
				case *instructions.HealthCheckCommand:
					health = c
				case *instructions.EntrypointCommand:
					if c.PrependShell {
						bad("target %s: ENTRYPOINT in shell form (there is no shell)", tg)
					}
					entry = strings.Join(c.CmdLine, " ")
				case *instructions.CopyCommand:
					if c.From != buildStage {
						bad("target %s: COPY from %q, want --from=%s", tg, c.From, buildStage)
					}
					if slices.Contains(c.SourcePaths, "/out/"+tg) {
						copied = true
					}
				case *instructions.RunCommand:
					bad("target %s: RUN in a scratch stage (no shell): %s", tg, strings.Join(c.CmdLine, " "))
				case *instructions.ArgCommand, *instructions.ExposeCommand:
				default:
					bad("target %s: unexpected %s", tg, c.Name())
				}
			}
		}
		if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
			bad("target %s: USER %q, want a non-root uid", tg, user)
		}
		if labels["org.opencontainers.image.version"] != "${VERSION}" || labels["org.opencontainers.image.revision"] != "${REVISION}" {
			bad("target %s: labels org.opencontainers.image.version/revision must be ${VERSION}/${REVISION}", tg)
		}
		if !copied {
			bad("target %s: does not COPY /out/%s", tg, tg)
		}
		if entry != "/usr/local/bin/"+tg {
			bad("target %s: ENTRYPOINT %q, want [\"/usr/local/bin/%s\"]", tg, entry, tg)
		}
		switch {
		case health == nil:
			bad("target %s: no HEALTHCHECK", tg)
		case slices.Contains(serverTargets, tg):
			test := health.Health.Test
			listen := env["VIGIE_"+strings.ToUpper(tg)+"_ADMIN_LISTEN"]
			_, port, _ := strings.Cut(listen, ":")
			if len(test) != 3 || test[0] != "CMD" || test[1] != "/usr/local/bin/healthcheck" || port == "" ||
				!strings.HasPrefix(test[2], "http://127.0.0.1:"+port+"/") {
				bad("target %s: HEALTHCHECK %v must run /usr/local/bin/healthcheck on the admin port (ENV VIGIE_%s_ADMIN_LISTEN=%q)", tg, test, strings.ToUpper(tg), listen)
			}
			if health.Health.Interval == 0 || health.Health.Timeout == 0 || health.Health.Retries == 0 {
				bad("target %s: HEALTHCHECK without interval, timeout and retries", tg)
			}
		default:
			if len(health.Health.Test) != 1 || health.Health.Test[0] != "NONE" {
				bad("target %s: a one-shot job has HEALTHCHECK NONE", tg)
			}
		}
	}
	return problems
}

func readDockerfile(t *testing.T) []byte {
	data, err := os.ReadFile(path(t, "Dockerfile"))
	require.NoError(t, err)
	return data
}

func TestDockerfile(t *testing.T) {
	data := readDockerfile(t)
	require.Empty(t, checkDockerfile(data))

	// Every main package the build stage names exists.
	d, err := parseDockerfile(data)
	require.NoError(t, err)
	for _, p := range d.buildPackages() {
		_, err := os.Stat(path(t, p))
		require.NoError(t, err, "the Dockerfile builds %s", p)
	}

	// The checker catches what it is for.
	for name, mutate := range map[string]func(string) string{
		"root user":  func(s string) string { return strings.Replace(s, "USER 65532:65532", "USER root", 1) },
		"no cgo off": func(s string) string { return strings.Replace(s, "ENV CGO_ENABLED=0 ", "ENV ", 1) },
		"no label": func(s string) string {
			return strings.Replace(s, `org.opencontainers.image.revision="${REVISION}"`, `org.opencontainers.image.created="x"`, 1)
		},
		"no healthcheck": func(s string) string {
			return strings.Replace(s, "HEALTHCHECK --interval", "# HEALTHCHECK --interval", 1)
		},
		"distro base": func(s string) string {
			return strings.Replace(s, "FROM scratch AS runtime", "FROM debian:12 AS runtime", 1)
		},
		"shell entrypoint": func(s string) string {
			return strings.Replace(s, `ENTRYPOINT ["/usr/local/bin/writer"]`, `ENTRYPOINT /usr/local/bin/writer`, 1)
		},
		"wrong port": func(s string) string {
			return strings.Replace(s, "VIGIE_WRITER_ADMIN_LISTEN=0.0.0.0:9090", "VIGIE_WRITER_ADMIN_LISTEN=0.0.0.0:9464", 1)
		},
		"no ldflags": func(s string) string {
			return strings.Replace(s, "-X github.com/vigie/vigie/pkg/service.revision=${REVISION}", "", 1)
		},
	} {
		m := mutate(string(data))
		require.NotEqual(t, string(data), m, name)
		require.NotEmpty(t, checkDockerfile([]byte(m)), "a Dockerfile with %s passed", name)
	}
}

func TestDockerignore(t *testing.T) {
	data, err := os.ReadFile(path(t, ".dockerignore"))
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	for _, want := range []string{".git", ".state", ".cache", "bin", "deploy/compose/secrets"} {
		require.Contains(t, lines, want, ".dockerignore keeps %s out of the build context", want)
	}
}
