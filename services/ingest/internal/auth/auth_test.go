package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

	s, err := auth.NewStore(path, 10*time.Millisecond, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

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
	require.Eventually(t, func() bool { _, ok := s.Authenticate(tok2); return ok }, 5*time.Second, 5*time.Millisecond)
	_, ok = s.Authenticate(tok1)
	require.False(t, ok)

	// A broken file keeps the previous credentials.
	require.NoError(t, writeRaw(path, "credentials: [oops"))
	require.Error(t, s.ReloadNow())
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)

	// So does an empty one (a file caught while rewritten in place).
	require.NoError(t, writeRaw(path, ""))
	require.Error(t, s.ReloadNow())
	_, ok = s.Authenticate(tok2)
	require.True(t, ok)
}

// writeRaw replaces the file atomically, as operators should (see sensorauth.WriteFile).
func writeRaw(path, s string) error {
	if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
