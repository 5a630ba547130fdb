package sensorauth_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/sensorauth"
)

func TestRoundTrip(t *testing.T) {
	e, tok, err := sensorauth.NewEntry("cp-aix-luynes-mas-01")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok, sensorauth.TokenPrefix))
	require.Equal(t, sensorauth.HashToken(tok), e.TokenSHA256)
	require.NotContains(t, e.TokenSHA256, tok)

	path := filepath.Join(t.TempDir(), "creds.yaml")
	f := &sensorauth.File{Credentials: []sensorauth.Entry{e}}
	require.NoError(t, f.WriteFile(path))
	got, err := sensorauth.Load(path)
	require.NoError(t, err)
	require.Equal(t, f, got)
}

func TestParseErrors(t *testing.T) {
	for name, content := range map[string]string{
		"bad sensor": "credentials:\n  - sensor_id: BAD ID\n    token_sha256: " + strings.Repeat("a", 64) + "\n",
		"bad hash":   "credentials:\n  - sensor_id: s1\n    token_sha256: abc\n",
		"unknown":    "credentials:\n  - sensor_id: s1\n    token: abc\n",
		"not yaml":   "credentials: [",
	} {
		_, err := sensorauth.Parse([]byte(content))
		require.Error(t, err, name)
	}
	f, err := sensorauth.Parse(nil)
	require.NoError(t, err)
	require.Empty(t, f.Credentials)
	_, _, err = sensorauth.NewEntry("Bad Sensor")
	require.Error(t, err)
}
