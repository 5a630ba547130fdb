package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/services/ingest/internal/app"
)

// TestConfigLimitsInFlight: the bounds of what ingest holds at once are validated, each
// error naming its key.
func TestConfigLimitsInFlight(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*app.LimitsConfig)
		key    string
	}{
		{"no request slot", func(l *app.LimitsConfig) { l.MaxRequestsInFlight = 0 }, "limits.max_requests_in_flight"},
		{"budget below one body", func(l *app.LimitsConfig) { l.MaxBytesInFlight = l.MaxBodyBytes - 1 }, "limits.max_bytes_in_flight"},
		{"no header timeout", func(l *app.LimitsConfig) { l.ReadHeaderTimeout = 0 }, "limits.read_header_timeout"},
		{"read timeout below the header's", func(l *app.LimitsConfig) { l.ReadTimeout = l.ReadHeaderTimeout - time.Second }, "limits.read_timeout"},
		{"wait as long as the read", func(l *app.LimitsConfig) { l.AdmissionWait = l.ReadTimeout }, "limits.admission_wait"},
		{"negative wait", func(l *app.LimitsConfig) { l.AdmissionWait = -time.Second }, "limits.admission_wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := app.DefaultConfig()
			cfg.CredentialsFile = "credentials.yaml"
			require.NoError(t, cfg.Validate())
			tc.adjust(&cfg.Limits)
			require.ErrorContains(t, cfg.Validate(), tc.key)
		})
	}
}
