package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigie/vigie/pkg/sensorauth"
	"github.com/vigie/vigie/services/ingest/internal/auth"
)

func TestStoreReloads(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "creds.yaml")
	e1, tok1, err := sensorauth.NewEntry("s1")
	require.NoError(t, err)
	e2, tok2, err := sensorauth.NewEntry("s2")
	require.NoError(t, err)
	require.NoError(t, (&sensorauth.File{Credentials: []sensorauth.Entry{e1}}).WriteFile(path))

	reg := prometheus.NewRegistry()
	s, err := auth.NewStore(path, zap.NewNop(), reg)
	require.NoError(t, err)
	ctx := context.Background()

	id, ok := s.Authenticate(tok1)
	require.True(t, ok)
	require.Equal(t, "s1", id)
	_, ok = s.Authenticate(tok2)
	require.False(t, ok)
	_, ok = s.Authenticate("")
	require.False(t, ok)
	_, ok = s.Authenticate(e1.TokenSHA256)
	require.False(t, ok, "the hash is not a token")

	// Rotation: s2 added, s1 removed, without restart.
	require.NoError(t, (&sensorauth.File{Credentials: []sensorauth.Entry{e2}}).WriteFile(path))
	_, ok = s.Authenticate(tok2)
	require.False(t, ok, "nothing changes before the reload")
	require.NoError(t, s.Reload(ctx))
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)
	_, ok = s.Authenticate(tok1)
	require.False(t, ok)
	require.NoError(t, s.Reload(ctx), "an unchanged file reloads fine")

	// A broken file keeps the previous credentials.
	require.NoError(t, writeRaw(path, "credentials: [oops"))
	err = s.Reload(ctx)
	require.ErrorContains(t, err, path)
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)

	// So does an empty one (a file caught while rewritten in place).
	require.NoError(t, writeRaw(path, ""))
	require.ErrorContains(t, s.Reload(ctx), "no entries")
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)

	// And a missing one.
	require.NoError(t, os.Remove(path))
	require.Error(t, s.Reload(ctx))
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP credentials_entries Credential entries loaded.
# TYPE credentials_entries gauge
credentials_entries 1
`), "credentials_entries"))
}

func TestStoreFailsClosedAtStart(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"broken": "credentials: [oops", "empty": ""} {
		path := filepath.Join(dir, name+".yaml")
		require.NoError(t, writeRaw(path, body))
		_, err := auth.NewStore(path, zap.NewNop(), prometheus.NewRegistry())
		require.ErrorContains(t, err, path, name)
	}
	_, err := auth.NewStore(filepath.Join(dir, "missing.yaml"), zap.NewNop(), prometheus.NewRegistry())
	require.Error(t, err)
}

// writeRaw replaces the file atomically, as operators should (see sensorauth.WriteFile).
func writeRaw(path, s string) error {
	if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
