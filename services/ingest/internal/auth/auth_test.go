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

	"github.com/vigie/vigie/pkg/event"
	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
	"github.com/vigie/vigie/services/ingest/internal/auth"
)

func TestStoreReloads(t *testing.T) {
	defer goleak.VerifyNone(t)
	path := filepath.Join(t.TempDir(), "creds.yaml")
	e1, tok1, err := sensorauth.NewEntry("s1", reference.SensorMAS)
	require.NoError(t, err)
	e2, tok2, err := sensorauth.NewEntry("s2", reference.SensorJammer)
	require.NoError(t, err)
	require.NoError(t, (&sensorauth.File{Credentials: []sensorauth.Entry{e1}}).WriteFile(path))

	reg := prometheus.NewRegistry()
	s, err := auth.NewStore(path, zap.NewNop(), reg)
	require.NoError(t, err)
	ctx := context.Background()

	got, err := s.Authenticate(tok1)
	require.NoError(t, err)
	require.Equal(t, auth.Sensor{ID: "s1", Type: reference.SensorMAS}, got)
	require.True(t, got.May(event.KindMASAttach))
	require.False(t, got.May(event.KindDroneSeen))
	for _, tok := range []string{tok2, "", e1.TokenSHA256} { // the hash is not a token
		_, err = s.Authenticate(tok)
		require.ErrorIs(t, err, auth.ErrUnknownToken, tok)
	}

	// Rotation: s2 added, s1 removed, without restart.
	require.NoError(t, (&sensorauth.File{Credentials: []sensorauth.Entry{e2}}).WriteFile(path))
	_, err = s.Authenticate(tok2)
	require.ErrorIs(t, err, auth.ErrUnknownToken, "nothing changes before the reload")
	require.NoError(t, s.Reload(ctx))
	got, err = s.Authenticate(tok2)
	require.NoError(t, err)
	require.Equal(t, auth.Sensor{ID: "s2", Type: reference.SensorJammer}, got)
	require.False(t, got.May(event.KindMASAttach), "a jammer sees no phone")
	_, err = s.Authenticate(tok1)
	require.ErrorIs(t, err, auth.ErrUnknownToken)
	require.NoError(t, s.Reload(ctx), "an unchanged file reloads fine")

	// Revocation fails closed: a file that cannot be loaded (broken, empty, missing, not a
	// file) leaves no sensor in force, not the previous ones, until a valid file is reloaded.
	for name, spoil := range map[string]func() error{
		"broken":  func() error { return writeRaw(path, "credentials: [oops") },
		"empty":   func() error { return writeRaw(path, "") },
		"missing": func() error { return os.Remove(path) },
		"folder":  func() error { _ = os.Remove(path); return os.Mkdir(path, 0o700) },
	} {
		require.NoError(t, spoil(), name)
		err = s.Reload(ctx)
		require.ErrorContains(t, err, path, name)
		_, err = s.Authenticate(tok2)
		require.ErrorIs(t, err, auth.ErrUnavailable, name)
		require.ErrorIs(t, s.Ready(ctx), auth.ErrUnavailable, name)
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader("# HELP credentials_entries Credential entries loaded.\n# TYPE credentials_entries gauge\ncredentials_entries 0\n"), "credentials_entries"), name)

		_ = os.Remove(path)
		require.NoError(t, (&sensorauth.File{Credentials: []sensorauth.Entry{e2}}).WriteFile(path))
		require.NoError(t, s.Reload(ctx), name)
		_, err = s.Authenticate(tok2)
		require.NoError(t, err, "%s, then fixed", name)
		require.NoError(t, s.Ready(ctx))
	}

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
