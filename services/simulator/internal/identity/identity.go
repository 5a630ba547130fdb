// Package identity makes the synthetic phone identifiers the simulator plants: IMEIs that
// look valid (an 8-digit TAC, a 6-digit serial, a correct Luhn check digit), IMSIs of French
// networks (MCC 208) and French mobile numbers. They are test identifiers, never real ones:
// serials and subscriber numbers come from the simulator's seeded random source.
package identity

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// LuhnDigit returns the Luhn check digit of a string of decimal digits (the IMEI's 15th
// digit computed over its first 14).
func LuhnDigit(digits string) byte {
	sum := 0
	// The rightmost payload digit is doubled, then every second one to its left.
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// IMEI returns the 15-digit IMEI of a TAC (8 digits) and a serial (0 to 999999), with its
// Luhn check digit.
func IMEI(tac string, serial int) string {
	if len(tac) != 8 || serial < 0 || serial > 999999 {
		panic(fmt.Sprintf("identity: bad tac %q or serial %d", tac, serial))
	}
	body := tac + fmt.Sprintf("%06d", serial)
	return body + string(LuhnDigit(body))
}

// French networks (MCC 208) and their 2-digit MNCs, with how often a contraband SIM belongs to
// each: Orange 01, SFR 10, Free 15, Bouygues 20, and two MVNO ranges.
var frenchMNCs = []struct {
	mnc    string
	weight int
}{{"01", 34}, {"10", 24}, {"15", 20}, {"20", 18}, {"26", 2}, {"88", 2}}

// IMSI returns a 15-digit IMSI of a French network: 208, a 2-digit MNC, a 10-digit
// subscriber number.
func IMSI(rng *rand.Rand) string {
	w := rng.IntN(100)
	mnc := frenchMNCs[len(frenchMNCs)-1].mnc
	for _, m := range frenchMNCs {
		if w < m.weight {
			mnc = m.mnc
			break
		}
		w -= m.weight
	}
	return "208" + mnc + fmt.Sprintf("%010d", rng.Int64N(10_000_000_000))
}

// ForeignIMSI returns a 15-digit IMSI of a neighbouring country's network (Belgium 206,
// Spain 214, Morocco 604, Algeria 603), as carried by some visitors and smuggled SIMs.
func ForeignIMSI(rng *rand.Rand) string {
	plmns := []string{"20601", "21407", "60400", "60302"}
	return plmns[rng.IntN(len(plmns))] + fmt.Sprintf("%010d", rng.Int64N(10_000_000_000))
}

// MSISDN returns a French mobile number in international form, +336 or +337 and 8 digits,
// written with the spaces some managed access systems keep.
func MSISDN(rng *rand.Rand) string {
	n := strconv.FormatInt(10_000_000+rng.Int64N(90_000_000), 10)
	return "+33 " + string("67"[rng.IntN(2)]) + " " + n[0:2] + " " + n[2:4] + " " + n[4:6] + " " + n[6:8]
}
