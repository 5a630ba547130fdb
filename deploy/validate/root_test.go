package validate

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the directory that holds go.work: the repository root.
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = os.ErrNotExist
				return
			}
			dir = parent
		}
	})
	require.NoError(t, rootErr, "no go.work above the test's directory")
	return rootDir
}

// path joins elements under the repository root.
func path(t testing.TB, elem ...string) string {
	return filepath.Join(append([]string{repoRoot(t)}, elem...)...)
}

// crdDir is ../shared/crds beside the repository: the operators' published CRDs, read in place.
func crdDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(repoRoot(t)), "shared", "crds")
	_, err := os.Stat(dir)
	require.NoError(t, err, "the operators' CRDs are read from ../shared/crds beside the repository")
	return dir
}
