package sensorauth_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
)

func TestRoundTrip(t *testing.T) {
	e, tok, err := sensorauth.NewEntry("cp-aix-luynes-mas-01", reference.SensorMAS)
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
	hash := strings.Repeat("a", 64)
	for name, content := range map[string]string{
		"bad sensor":   "credentials:\n  - sensor_id: BAD ID\n    sensor_type: mas\n    token_sha256: " + hash + "\n",
		"bad hash":     "credentials:\n  - sensor_id: s1\n    sensor_type: mas\n    token_sha256: abc\n",
		"unknown":      "credentials:\n  - sensor_id: s1\n    sensor_type: mas\n    token: abc\n",
		"not yaml":     "credentials: [",
		"no type":      "credentials:\n  - sensor_id: s1\n    token_sha256: " + hash + "\n",
		"unknown type": "credentials:\n  - sensor_id: s1\n    sensor_type: radar\n    token_sha256: " + hash + "\n",
		"two types":    "credentials:\n  - sensor_id: s1\n    sensor_type: mas\n    token_sha256: " + hash + "\n  - sensor_id: s1\n    sensor_type: jammer\n    token_sha256: " + strings.Repeat("b", 64) + "\n",
	} {
		_, err := sensorauth.Parse([]byte(content))
		require.Error(t, err, name)
		t.Logf("%s: %v", name, err)
	}
	f, err := sensorauth.Parse(nil)
	require.NoError(t, err)
	require.Empty(t, f.Credentials)
	_, _, err = sensorauth.NewEntry("Bad Sensor", reference.SensorMAS)
	require.Error(t, err)
}
