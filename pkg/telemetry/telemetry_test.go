package telemetry_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigie/vigie/pkg/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRegistryHasRuntimeCollectors(t *testing.T) {
	families, err := telemetry.NewRegistry().Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	require.True(t, names["go_goroutines"])
	require.True(t, names["process_resident_memory_bytes"])
}

func TestLogConfigValidate(t *testing.T) {
	require.NoError(t, telemetry.DefaultLogConfig().Validate())
	require.ErrorContains(t, telemetry.LogConfig{Format: "xml", Level: "info"}.Validate(), "log.format")
	require.ErrorContains(t, telemetry.LogConfig{Format: "json", Level: "loud"}.Validate(), "log.level")
	for _, format := range []string{"json", "console"} {
		logger, err := telemetry.NewLogger(telemetry.LogConfig{Format: format, Level: "debug"}, "test")
		require.NoError(t, err)
		logger.Debug("hello")
	}
}
