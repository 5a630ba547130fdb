package creds

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/reference"
	"github.com/vigie/vigie/pkg/sensorauth"
)

func TestWriteAndLoad(t *testing.T) {
	dir := t.TempDir()
	toks, f, err := Generate([]*reference.Sensor{{ID: "cp-laon.mas-001", Type: reference.SensorMAS}, {ID: "cp-laon.rf-001", Type: reference.SensorRF}})
	require.NoError(t, err)
	credPath, tokPath := filepath.Join(dir, "ingest", "credentials.yaml"), filepath.Join(dir, "sim", "tokens.yaml")
	require.NoError(t, Write(credPath, tokPath, toks, f))

	loaded, err := Load(tokPath)
	require.NoError(t, err)
	require.Equal(t, toks, loaded)
	hashes, err := sensorauth.Load(credPath)
	require.NoError(t, err)
	require.Len(t, hashes.Credentials, 2)
	types := map[string]reference.SensorType{}
	for _, e := range hashes.Credentials {
		require.Equal(t, sensorauth.HashToken(loaded[e.SensorID]), e.TokenSHA256)
		types[e.SensorID] = e.SensorType
	}
	require.Equal(t, map[string]reference.SensorType{"cp-laon.mas-001": reference.SensorMAS, "cp-laon.rf-001": reference.SensorRF}, types)
	for _, p := range []string{credPath, tokPath} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	}
	data, err := os.ReadFile(credPath)
	require.NoError(t, err)
	for _, tok := range toks {
		require.NotContains(t, string(data), tok, "the ingest file must hold hashes only")
	}
}

func TestGenerateRejectsBadSensorID(t *testing.T) {
	_, _, err := Generate([]*reference.Sensor{{ID: "Bad Sensor", Type: reference.SensorMAS}})
	require.Error(t, err)
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	require.ErrorContains(t, err, "simulator credentials")
}
