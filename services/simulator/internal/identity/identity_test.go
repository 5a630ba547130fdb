package identity

import (
	"math/rand/v2"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/pseudonym"
)

func TestIMEI(t *testing.T) {
	tests := []struct {
		tac    string
		serial int
		want   string
	}{
		// Check digits computed by hand with the Luhn algorithm.
		{"49015420", 323751, "490154203237518"},
		{"35828802", 0, "358288020000005"},
		{"86741801", 999999, "867418019999990"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := IMEI(tt.tac, tt.serial)
			require.Equal(t, tt.want, got)
			require.True(t, pseudonym.LuhnValid(got))
		})
	}
}

func TestGeneratedIdentifiersAreSynthetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	imsiRE := regexp.MustCompile(`^208(01|10|15|20|26|88)[0-9]{10}$`)
	foreignRE := regexp.MustCompile(`^(20601|21407|60400|60302)[0-9]{10}$`)
	msisdnRE := regexp.MustCompile(`^\+33 [67] [0-9]{2} [0-9]{2} [0-9]{2} [0-9]{2}$`)
	for range 1000 {
		require.Regexp(t, imsiRE, IMSI(rng))
		require.Regexp(t, foreignRE, ForeignIMSI(rng))
		m := MSISDN(rng)
		require.Regexp(t, msisdnRE, m)
		_, err := pseudonym.NormalizeMSISDN(m, "33")
		require.NoError(t, err)
		serial := rng.IntN(1_000_000)
		require.True(t, pseudonym.LuhnValid(IMEI("35828802", serial)))
	}
}
