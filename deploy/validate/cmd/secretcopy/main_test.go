package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A secret volume as the kubelet lays it out: the data in a timestamped directory, ..data a
// symlink to it, each key a symlink through ..data; files group-readable (fsGroup).
func TestRunCopiesKeysWithMode0400(t *testing.T) {
	vol := t.TempDir()
	ts := filepath.Join(vol, "..2026_12_03_10_00_00.1")
	require.NoError(t, os.Mkdir(ts, 0o750))
	for k, v := range map[string]string{"kafka-password": "s3cret\n", "pseudonym_keys.yaml": "active: k1\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(ts, k), []byte(v), 0o440))
		require.NoError(t, os.Symlink(filepath.Join("..data", k), filepath.Join(vol, k)))
	}
	require.NoError(t, os.Symlink(filepath.Base(ts), filepath.Join(vol, "..data")))

	dst := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst, "kafka-password"), []byte("old"), 0o600)) // a restart
	require.NoError(t, run([]string{"-from", vol, "-to", dst}))
	entries, err := os.ReadDir(dst)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	for _, e := range entries {
		st, err := os.Lstat(filepath.Join(dst, e.Name()))
		require.NoError(t, err)
		require.True(t, st.Mode().IsRegular(), e.Name())
		require.Equal(t, os.FileMode(0o400), st.Mode().Perm(), e.Name())
	}
	data, err := os.ReadFile(filepath.Join(dst, "kafka-password"))
	require.NoError(t, err)
	require.Equal(t, "s3cret\n", string(data))

	require.ErrorContains(t, run([]string{"-from", t.TempDir(), "-to", dst}), "no secret file")
	require.Error(t, run([]string{"-from", vol}))
}
