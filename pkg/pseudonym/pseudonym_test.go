package pseudonym_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigie/vigie/pkg/config"
	"github.com/vigie/vigie/pkg/pseudonym"
)

var (
	secret1  = []byte("0123456789abcdef0123456789abcdef")
	secret2  = []byte("fedcba9876543210fedcba9876543210")
	blockKey = []byte("b10cb10cb10cb10cb10cb10cb10cb10c")
	hexRE    = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

func keyring(t testing.TB) *pseudonym.Keyring {
	t.Helper()
	k, err := pseudonym.NewKeyring("k2", []pseudonym.Key{{Version: "k1", Secret: secret1}, {Version: "k2", Secret: secret2}}, blockKey, "33")
	require.NoError(t, err)
	return k
}

// chained is the pseudonym of version k2 of the keyring: k1's, carried by k2's key.
func chained(msg string) string { return want(secret2, "chain:"+want(secret1, msg)) }

func want(secret []byte, msg string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func TestIMEI(t *testing.T) {
	p := keyring(t).Active()
	ok, bad := true, false
	for _, tc := range []struct {
		name, in string
		err      error
		tac      string
		check    *bool
	}{
		{name: "15 digits good luhn", in: "358288021042170", tac: "35828802", check: &ok},
		{name: "15 digits check digit 0", in: "358288021042171", tac: "35828802", check: &bad},
		{name: "14 digits", in: "35828802104217", tac: "35828802"},
		{name: "imeisv", in: "3582880210421705", tac: "35828802"},
		{name: "13 digits", in: "3582880210421", err: pseudonym.ErrInvalidIMEI},
		{name: "17 digits", in: "35828802104217012", err: pseudonym.ErrInvalidIMEI},
		{name: "letters", in: "35828802104217A", err: pseudonym.ErrInvalidIMEI},
		{name: "empty", in: "", err: pseudonym.ErrInvalidIMEI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.IMEI(tc.in)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, chained("imei:35828802104217"), r.Pseudo, "keyed on the first 14 digits")
			require.Equal(t, tc.tac, r.TAC)
			require.Equal(t, want(blockKey, "block:"+tc.in[:11])[:pseudonym.BlockIDLen], r.Block)
			require.Equal(t, tc.check, r.CheckOK)
		})
	}
}

func TestIMSI(t *testing.T) {
	p := keyring(t).Active()
	for _, tc := range []struct{ in, mcc, mnc string }{
		{"208150123456789", "208", "15"},  // France, Free
		{"208010123456789", "208", "01"},  // France, Orange
		{"310260123456789", "310", "260"}, // USA, T-Mobile
		{"302720123456789", "302", "720"}, // Canada
		{"234150123456789", "234", "15"},  // UK
		{"405025123456789", "405", "025"}, // India, 3-digit listed
		{"405010123456789", "405", "01"},  // India, 2-digit listed
		{"999990000000000", "999", "99"},
		{"123456", "123", "45"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := p.IMSI(tc.in)
			require.NoError(t, err)
			require.Equal(t, chained("imsi:"+tc.in), r.Pseudo)
			require.Equal(t, tc.mcc, r.MCC)
			require.Equal(t, tc.mnc, r.MNC)
		})
	}
	for _, in := range []string{"", "12345", "1234567890123456", "20801abc"} {
		_, err := p.IMSI(in)
		require.ErrorIs(t, err, pseudonym.ErrInvalidIMSI, in)
	}
}

func TestNormalizeMSISDN(t *testing.T) {
	for _, tc := range []struct{ in, cc, out string }{
		{"+33 6 12 34 56 78", "33", "+33612345678"},
		{"0033612345678", "33", "+33612345678"},
		{"06.12.34.56.78", "33", "+33612345678"},
		{"06-12-34-56-78", "", "0612345678"},
		{"(0)6 12 34 56 78", "33", "+33612345678"},
		{"112", "33", "112"},
		{"+1 (212) 555-0100", "33", "+12125550100"},
	} {
		got, err := pseudonym.NormalizeMSISDN(tc.in, tc.cc)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.out, got, tc.in)
	}
	for _, in := range []string{"", "1", "+", "06x12", "1234567890123456", "0+6"} {
		_, err := pseudonym.NormalizeMSISDN(in, "33")
		require.ErrorIs(t, err, pseudonym.ErrInvalidMSISDN, in)
	}
	p := keyring(t).Active()
	a, err := p.MSISDN("06 12 34 56 78")
	require.NoError(t, err)
	b, err := p.MSISDN("+33612345678")
	require.NoError(t, err)
	require.Equal(t, a, b, "one number, one pseudonym")
	require.Equal(t, chained("msisdn:+33612345678"), a)
}

func TestKeyVersions(t *testing.T) {
	k := keyring(t)
	require.Equal(t, "k2", k.Active().KeyVersion())
	require.Equal(t, []string{"k1", "k2"}, k.Versions())
	old, ok := k.Version("k1")
	require.True(t, ok)
	a, err := old.IMSI("208150123456789")
	require.NoError(t, err)
	b, err := k.Active().IMSI("208150123456789")
	require.NoError(t, err)
	require.NotEqual(t, a.Pseudo, b.Pseudo)
	require.Equal(t, want(secret1, "imsi:208150123456789"), a.Pseudo)
	// Domain separation: same digits as IMEI and IMSI differ.
	i, err := k.Active().IMEI("208150123456789")
	require.NoError(t, err)
	require.NotEqual(t, i.Pseudo, b.Pseudo)
	require.NotContains(t, k.Active().String(), string(secret2))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(path, []byte("active: k1\ndefault_country_code: \"33\"\nblock_key: "+hex.EncodeToString(blockKey)+"\nkeys:\n  k1: "+hex.EncodeToString(secret1)+"\n  k0: "+hex.EncodeToString(secret2)+"\n"), 0o600))
	k, err := pseudonym.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, "k1", k.Active().KeyVersion())
	got, err := k.Active().MSISDN("0612345678")
	require.NoError(t, err)
	require.Equal(t, want(secret1, "msisdn:+33612345678"), got)

	env := map[string]string{pseudonym.EnvKeys: "a:" + hex.EncodeToString(secret1) + ",b:" + hex.EncodeToString(secret2), pseudonym.EnvBlockKey: hex.EncodeToString(blockKey)}
	k, err = pseudonym.FromEnv(func(s string) string { return env[s] }, "")
	require.NoError(t, err)
	require.Equal(t, "b", k.Active().KeyVersion())

	bk := "block_key: " + hex.EncodeToString(blockKey) + "\n"
	for name, content := range map[string]string{
		"short key":        bk + "active: k1\nkeys:\n  k1: abcd\n",
		"not hex":          bk + "active: k1\nkeys:\n  k1: zz\n",
		"missing active":   bk + "active: k9\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n",
		"no keys":          bk + "active: k1\n",
		"bad version":      bk + "active: 'k 1'\nkeys:\n  'k 1': " + hex.EncodeToString(secret1) + "\n",
		"bad cc":           bk + "active: k1\ndefault_country_code: '+33'\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n",
		"twice":            bk + "active: k1\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n  k1: " + hex.EncodeToString(secret2) + "\n",
		"no block key":     "active: k1\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n",
		"short block key":  "block_key: abcd\nactive: k1\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n",
		"block key reused": "block_key: " + hex.EncodeToString(secret1) + "\nactive: k1\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n",
	} {
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, err := pseudonym.LoadFile(path)
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), hex.EncodeToString(secret1), "errors never print keys")
		require.NotContains(t, err.Error(), hex.EncodeToString(blockKey), "errors never print keys")
	}

	// A key file group or others may read is refused, naming the file and its mode.
	good := bk + "active: k1\nkeys:\n  k1: " + hex.EncodeToString(secret1) + "\n"
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o666} {
		require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
		require.NoError(t, os.Chmod(path, mode))
		_, err := pseudonym.LoadFile(path)
		require.ErrorContains(t, err, path, "mode %04o", mode)
		require.ErrorContains(t, err, fmt.Sprintf("%04o", mode))
	}
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = pseudonym.LoadFile(path)
	require.NoError(t, err, "read-only for its owner is fine")
}

func FuzzPseudonymize(f *testing.F) {
	for _, s := range []string{"358288021042170", "208150123456789", "+33 6 12 34 56 78", "0033", "", "(", "00", "+0", "0612345678", "\xff"} {
		f.Add(s)
	}
	p := keyring(f).Active()
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := p.IMEI(s); err == nil {
			require.Regexp(t, hexRE, r.Pseudo)
			require.Len(t, r.TAC, 8)
			require.Len(t, r.Block, pseudonym.BlockIDLen)
		}
		if r, err := p.IMSI(s); err == nil {
			require.Regexp(t, hexRE, r.Pseudo)
			require.Len(t, r.MCC, 3)
			require.Contains(t, []int{2, 3}, len(r.MNC))
			require.Equal(t, s[:3+len(r.MNC)], r.MCC+r.MNC)
		}
		norm, err := pseudonym.NormalizeMSISDN(s, "33")
		if err == nil {
			again, err := pseudonym.NormalizeMSISDN(norm, "33")
			require.NoError(t, err)
			require.Equal(t, norm, again, "normalisation is idempotent")
			ps, err := p.MSISDN(s)
			require.NoError(t, err)
			require.Regexp(t, hexRE, ps)
		}
	})
}

func BenchmarkIMEI(b *testing.B) {
	p := keyring(b).Active()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.IMEI("358288021042170")
	}
}

// A rotation carries a device over: the new version's pseudonym of an identifier is the old
// version's pseudonym mapped forward with the new key alone, for every kind of identifier.
func TestForwardKeepsIdentityAcrossRotation(t *testing.T) {
	k := keyring(t)
	old, _ := k.Version("k1")
	cur := k.Active()
	a, err := old.IMEI("358288021042170")
	require.NoError(t, err)
	b, err := cur.IMEI("358288021042170")
	require.NoError(t, err)
	require.NotEqual(t, a.Pseudo, b.Pseudo, "a rotation changes what is stored")
	require.Equal(t, b.Pseudo, cur.Forward(a.Pseudo), "and the old pseudonym maps forward onto the new one")
	require.Equal(t, a.Block, b.Block, "block ids have their own key: a rotation leaves them")

	ai, _ := old.IMSI("208150123456789")
	bi, _ := cur.IMSI("208150123456789")
	require.Equal(t, bi.Pseudo, cur.Forward(ai.Pseudo))
	am, _ := old.MSISDN("0612345678")
	bm, _ := cur.MSISDN("0612345678")
	require.Equal(t, bm, cur.Forward(am))
	require.Equal(t, cur.Text(pseudonym.LabelUASID, "FA-UAS-1"), cur.Forward(old.Text(pseudonym.LabelUASID, "FA-UAS-1")))

	// Whoever holds only the old key cannot make the new pseudonyms: with k1 alone, a
	// keyring computes k1's.
	alone, err := pseudonym.NewKeyring("k1", []pseudonym.Key{{Version: "k1", Secret: secret1}}, blockKey, "33")
	require.NoError(t, err)
	c, _ := alone.Active().IMEI("358288021042170")
	require.Equal(t, a.Pseudo, c.Pseudo)
	require.NotEqual(t, b.Pseudo, c.Pseudo)
}

// Serial-block ids: one id per TAC and block, none of the serial's digits, and not made
// with a pseudonym key.
func TestBlockID(t *testing.T) {
	p := keyring(t).Active()
	same1, _ := p.IMEI("358288021042170")
	same2, _ := p.IMEI("35828802104999")
	other, _ := p.IMEI("358288021052170")
	otherTAC, _ := p.IMEI("358288031042170")
	require.Equal(t, same1.Block, same2.Block, "one block, one id")
	require.NotEqual(t, same1.Block, other.Block)
	require.NotEqual(t, same1.Block, otherTAC.Block)
	require.Regexp(t, `^[0-9a-f]{16}$`, same1.Block)

	// Another pseudonym key, the same block key: the same block ids; another block key:
	// other ids.
	k2, err := pseudonym.NewKeyring("x", []pseudonym.Key{{Version: "x", Secret: secret2}}, blockKey, "")
	require.NoError(t, err)
	again, _ := k2.Active().IMEI("358288021042170")
	require.Equal(t, same1.Block, again.Block)
	k3, err := pseudonym.NewKeyring("x", []pseudonym.Key{{Version: "x", Secret: secret2}}, secret1, "")
	require.NoError(t, err)
	rekeyed, _ := k3.Active().IMEI("358288021042170")
	require.NotEqual(t, same1.Block, rekeyed.Block)
}

// vigiectl keys rotate: a new version at the end of the chain, active, in a file that stays
// 0600 and keeps its comments; the device keeps one identity through Forward.
func TestRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.yaml")
	content := "# the division's pseudonym keys\nactive: k1\ndefault_country_code: \"33\"\nblock_key: " +
		hex.EncodeToString(blockKey) + "\nkeys:\n  k1: " + hex.EncodeToString(secret1) + " # first key\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	before, err := pseudonym.LoadFile(path)
	require.NoError(t, err)

	added, err := pseudonym.Rotate(path, "")
	require.NoError(t, err)
	require.Equal(t, "k2", added)
	after, err := pseudonym.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, "k2", after.Active().KeyVersion())
	require.Equal(t, []string{"k1", "k2"}, after.Versions())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), "# the division's pseudonym keys")
	require.Contains(t, string(data), "# first key")

	a, err := before.Active().IMEI("358288021042170")
	require.NoError(t, err)
	b, err := after.Active().IMEI("358288021042170")
	require.NoError(t, err)
	require.NotEqual(t, a.Pseudo, b.Pseudo)
	require.Equal(t, b.Pseudo, after.Active().Forward(a.Pseudo))
	k1, ok := after.Version("k1")
	require.True(t, ok)
	c, err := k1.IMEI("358288021042170")
	require.NoError(t, err)
	require.Equal(t, a.Pseudo, c.Pseudo, "the old version still computes what was stored under it")
	f, err := after.Forward("k1", a.Pseudo)
	require.NoError(t, err)
	require.Equal(t, b.Pseudo, f)

	added, err = pseudonym.Rotate(path, "2027-01")
	require.NoError(t, err)
	require.Equal(t, "2027-01", added)
	_, err = pseudonym.Rotate(path, "k2")
	require.ErrorContains(t, err, `version "k2" is already listed`)
	_, err = pseudonym.Rotate(path, "bad version")
	require.ErrorContains(t, err, "must match")
	after, err = pseudonym.LoadFile(path)
	require.NoError(t, err)
	require.Equal(t, []string{"k1", "k2", "2027-01"}, after.Versions(), "a refused rotation leaves the file as it was")
	f, err = after.Forward("k1", a.Pseudo)
	require.NoError(t, err)
	c, err = after.Active().IMEI("358288021042170")
	require.NoError(t, err)
	require.Equal(t, c.Pseudo, f, "two rotations: k1 maps through k2 onto 2027-01")
	_, err = after.Forward("k7", a.Pseudo)
	require.ErrorContains(t, err, `version "k7" is not loaded`)

	// A key file others may read is refused before anything is written.
	require.NoError(t, os.Chmod(path, 0o640))
	_, err = pseudonym.Rotate(path, "k9")
	require.ErrorIs(t, err, config.ErrSecretMode)
}

// A device's route does not change with a rotation; routes spread over their 256 values.
func TestRouteStableAcrossRotation(t *testing.T) {
	k := keyring(t)
	old, _ := k.Version("k1")
	cur := k.Active()
	seen := map[string]int{}
	for i := range 4096 {
		imei := fmt.Sprintf("35828802%06d", i)
		a, err := old.IMEI(imei)
		require.NoError(t, err)
		b, err := cur.IMEI(imei)
		require.NoError(t, err)
		require.Equal(t, a.Route, b.Route)
		require.NotEqual(t, a.Pseudo, b.Pseudo)
		require.Regexp(t, `^[0-9a-f]{2}$`, b.Route)
		seen[b.Route]++
		ai, _ := old.IMSI(fmt.Sprintf("20815%010d", i))
		bi, _ := cur.IMSI(fmt.Sprintf("20815%010d", i))
		require.Equal(t, ai.Route, bi.Route)
	}
	require.Len(t, seen, 256, "4,096 devices take every route")
	for r, n := range seen {
		require.Less(t, n, 40, "route %s: %d of 4,096 devices (16 expected)", r, n)
	}
}
