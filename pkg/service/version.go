package service

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and revision are set at link time:
//
//	go build -ldflags "-X github.com/vigie/vigie/pkg/service.version=v1.2.0 -X github.com/vigie/vigie/pkg/service.revision=$(git rev-parse HEAD)"
//
// (the Makefile's build target does). Without them Version falls back on the build
// information Go records.
var version, revision string

// Version returns the binary's version and revision: from -ldflags when set, else from the
// build information (module version; vcs.revision, with "-dirty" when vcs.modified), else
// "dev" and "unknown".
func Version() (string, string) {
	v, r := version, revision
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		if r == "" {
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					r = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if r != "" && modified {
				r += "-dirty"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if r == "" {
		r = "unknown"
	}
	return v, r
}

// versionLine is what -version prints.
func versionLine(name string) string {
	v, r := Version()
	return fmt.Sprintf("%s %s (revision %s, %s)", name, v, r, runtime.Version())
}
