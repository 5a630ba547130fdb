package e2e

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/event"
)

// The scan must find what it looks for, in every form, and nothing else.
func TestClearIDsFind(t *testing.T) {
	ids := newClearIDs()
	ids.add(&event.Detector{IMEI: "358288020000005", IMSI: "208150123456789", MSISDNDialed: "+33 6 12 34 56 78"})
	tests := []struct {
		text string
		want string
	}{
		{`{"imei":"358288020000005"}`, "imei"},
		{`{"x":"35828802000000 0"}`, "imei"},
		{`imsi=208150123456789`, "imsi"},
		{`"msisdn_dialed":"+33 6 12 34 56 78"`, "msisdn"},
		{`called 06.12.34.56.78`, "msisdn"},
		{`{"imei_pseudo":"d7ff59a257d6c5387b57cc1c0ba03fa2","tac":"35828802","observed_at":"2026-11-25T09:14:07.125Z"}`, ""},
		{`offset 123456789012`, ""},
		{`"zone":"\u0032\u0030\u0038\u0031\u0035\u0030\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038\u0039"`, "imsi"},
		{`cell 208:150:123:456:789`, "imsi"},
		{`id 358_288_020_000_005`, "imei"},
	}
	for _, tt := range tests {
		got, _, _ := strings.Cut(ids.find(tt.text), " ")
		require.Equal(t, tt.want, got, tt.text)
	}
}
