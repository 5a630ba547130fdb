package validate

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/stretchr/testify/require"
)

// The version and revision the test links into the binaries and labels the images with;
// VIGIE_OCI_VERSION and VIGIE_OCI_REVISION set them for images meant to be pushed (make oci).
var (
	testVersion  = envOr("VIGIE_OCI_VERSION", "v0.0.0-validate")
	testRevision = envOr("VIGIE_OCI_REVISION", "0123456789abcdef0123456789abcdef01234567")
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	binTook time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds, once per test run, every main package the Dockerfile's build stage
// builds, the way it builds them (static, -trimpath, version and revision linked in), in one
// `go build` of the workspace. It returns the directory of the binaries.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		d, err := parseDockerfile(readDockerfile(t))
		if err != nil {
			binErr = err
			return
		}
		binDir, binErr = os.MkdirTemp("", "vigie-images-")
		if binErr != nil {
			return
		}
		args := []string{"build", "-trimpath", "-ldflags",
			"-s -w -X github.com/vigie/vigie/pkg/service.version=" + testVersion + " -X github.com/vigie/vigie/pkg/service.revision=" + testRevision,
			"-o", binDir + "/"}
		args = append(args, d.buildPackages()...)
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK="+filepath.Join(repoRoot(t), "go.work"), "GOFLAGS=-buildvcs=false")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		binTook = time.Since(start)
		if err != nil {
			binErr = errors.New("go " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
		}
	})
	require.NoError(t, binErr)
	return binDir
}

var echoToOut = regexp.MustCompile(`echo '([^']*)' > /out/([a-z]+)`)

// stageFiles are the files the build stage writes with echo (passwd, group).
func stageFiles(d *dockerfile) map[string][]byte {
	out := map[string][]byte{}
	for _, c := range d.byName[buildStage].Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			for _, m := range echoToOut.FindAllStringSubmatch(strings.Join(r.CmdLine, " "), -1) {
				out["/out/"+m[2]] = []byte(m[1] + "\n")
			}
		}
	}
	return out
}

var argRef = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// assemble builds the image of a Dockerfile target without a daemon: the target's stages
// from scratch are replayed (COPY --from=build from the binaries built here, one layer per
// COPY; LABEL, ENV, USER, EXPOSE, HEALTHCHECK, ENTRYPOINT into the image configuration).
func assemble(t *testing.T, d *dockerfile, target string, args map[string]string) v1.Image {
	t.Helper()
	bins := binaries(t)
	generated := stageFiles(d)
	chain, err := d.chain(target)
	require.NoError(t, err)
	require.Equal(t, "scratch", chain[0].BaseName)
	expand := func(s string) string {
		s = strings.Trim(s, `"`)
		return argRef.ReplaceAllStringFunc(s, func(m string) string { return args[m[2:len(m)-1]] })
	}
	cfg := v1.Config{Labels: map[string]string{}, ExposedPorts: map[string]struct{}{}}
	var layers []v1.Layer
	for _, s := range chain {
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.ArgCommand:
			case *instructions.CopyCommand:
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				dirs := map[string]bool{}
				for _, src := range c.SourcePaths {
					var data []byte
					mode := int64(0o644)
					switch {
					case generated[src] != nil:
						data = generated[src]
					case strings.HasPrefix(src, "/out/"):
						data, err = os.ReadFile(filepath.Join(bins, strings.TrimPrefix(src, "/out/")))
						require.NoError(t, err, "COPY %s", src)
						mode = 0o755
					default: // a file of the build image: the CA certificates
						data, err = os.ReadFile(src)
						require.NoError(t, err, "COPY %s: read from this machine", src)
					}
					dest := c.DestPath
					if strings.HasSuffix(dest, "/") {
						dest += filepath.Base(src)
					}
					for dir := filepath.Dir(dest); dir != "/"; dir = filepath.Dir(dir) {
						dirs[dir] = true
					}
					for _, dir := range sortedDirs(dirs) {
						require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755}))
						dirs[dir] = false
					}
					require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dest, "/"), Mode: mode, Size: int64(len(data))}))
					_, err = tw.Write(data)
					require.NoError(t, err)
				}
				require.NoError(t, tw.Close())
				raw := buf.Bytes()
				// Uncompressed OCI layers: valid for any registry, and the test does not spend its
				// time gzipping (BuildKit compresses the real ones).
				layers = append(layers, static.NewLayer(raw, types.OCIUncompressedLayer))
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					cfg.Labels[kv.Key] = expand(kv.Value)
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					cfg.Env = append(cfg.Env, kv.Key+"="+expand(kv.Value))
				}
			case *instructions.UserCommand:
				cfg.User = c.User
			case *instructions.ExposeCommand:
				for _, p := range c.Ports {
					if !strings.Contains(p, "/") {
						p += "/tcp"
					}
					cfg.ExposedPorts[p] = struct{}{}
				}
			case *instructions.HealthCheckCommand:
				h := c.Health
				cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
			case *instructions.EntrypointCommand:
				cfg.Entrypoint = c.CmdLine
			default:
				t.Fatalf("target %s: %s has no meaning in a scratch stage", target, c.Name())
			}
		}
	}
	cfg.Env = append([]string{"PATH=/usr/local/bin"}, cfg.Env...)
	img, err := mutate.AppendLayers(empty.Image, layers...)
	require.NoError(t, err)
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

func sortedDirs(m map[string]bool) []string {
	var out []string
	for d, pending := range m {
		if pending {
			out = append(out, d)
		}
	}
	slices.Sort(out) // parents first
	return out
}

// TestImages assembles every image of the Dockerfile as an OCI image layout (no daemon, no
// base image pulled) and checks what a registry would get: a non-root user, the labels, the
// health check, and an entrypoint that is a static binary answering -version with the
// version and revision linked in. VIGIE_OCI_DIR keeps the layout (push it with crane or skopeo).
func TestImages(t *testing.T) {
	d, err := parseDockerfile(readDockerfile(t))
	require.NoError(t, err)
	dir := os.Getenv("VIGIE_OCI_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	p, err := layout.Write(dir, empty.Index)
	require.NoError(t, err)
	args := map[string]string{"VERSION": testVersion, "REVISION": testRevision}
	targets := append(slices.Clone(serverTargets), jobTargets...)
	for _, tg := range targets {
		img := assemble(t, d, tg, args)
		require.NoError(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "vigie/" + tg + ":" + testVersion})))
	}
	t.Logf("binaries built in %s", binTook.Round(time.Millisecond))

	// Read the layout back, as a registry client would.
	idx, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, len(targets))
	for _, desc := range im.Manifests {
		ref := desc.Annotations["org.opencontainers.image.ref.name"]
		tg := strings.TrimSuffix(strings.TrimPrefix(ref, "vigie/"), ":"+testVersion)
		t.Run(tg, func(t *testing.T) {
			require.Equal(t, types.OCIManifestSchema1, desc.MediaType)
			img, err := idx.Image(desc.Digest)
			require.NoError(t, err)
			cf, err := img.ConfigFile()
			require.NoError(t, err)
			c := cf.Config
			uid, _, _ := strings.Cut(c.User, ":")
			require.NotContains(t, []string{"", "0", "root"}, uid, "user")
			require.Equal(t, testVersion, c.Labels["org.opencontainers.image.version"])
			require.Equal(t, testRevision, c.Labels["org.opencontainers.image.revision"])
			require.Equal(t, []string{"/usr/local/bin/" + tg}, c.Entrypoint)
			require.NotNil(t, c.Healthcheck)
			if slices.Contains(serverTargets, tg) {
				require.Equal(t, "/usr/local/bin/healthcheck", c.Healthcheck.Test[1])
				require.Contains(t, c.ExposedPorts, "9090/tcp")
			} else {
				require.Equal(t, []string{"NONE"}, c.Healthcheck.Test)
			}

			files := extract(t, img)
			for _, f := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/healthcheck", "usr/local/bin/secretcopy", "usr/local/bin/" + tg} {
				require.Contains(t, files, f)
			}
			require.Contains(t, string(files["etc/passwd"].data), ":"+uid+":", "/etc/passwd names the image's user")
			for name, f := range files {
				if strings.HasPrefix(name, "usr/local/bin/") {
					require.Equal(t, int64(0o755), f.mode, name)
					requireStatic(t, name, f.data)
				}
			}
			if tg == "simulator" {
				return // not on the service skeleton: no -version
			}
			exe := filepath.Join(t.TempDir(), tg)
			require.NoError(t, os.WriteFile(exe, files["usr/local/bin/"+tg].data, 0o755))
			out, err := exec.Command(exe, "-version").CombinedOutput()
			require.NoError(t, err, "%s -version: %s", tg, out)
			require.Contains(t, string(out), testVersion)
			require.Contains(t, string(out), testRevision)
		})
	}
}

type imageFile struct {
	mode int64
	data []byte
}

// extract flattens the image's layers into its files.
func extract(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]imageFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name] = imageFile{mode: h.Mode, data: data}
	}
}

// requireStatic fails unless the ELF binary has no interpreter and no shared library.
func requireStatic(t *testing.T, name string, data []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err, name)
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "%s has an ELF interpreter: not static", name)
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs, "%s needs shared libraries", name)
}
