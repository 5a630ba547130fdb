package pseudonym

// SplitPLMN returns the MCC (first 3 digits) and MNC (2 or 3 digits) of an IMSI of at least 6
// digits. The MNC length is not written in the IMSI; it is decided with tables built from the
// public MCC/MNC list (shared/reference/mcc_mnc.csv, from Wikipedia "Mobile country code"):
//
//   - an MCC whose listed networks all use 3-digit MNCs (mcc3Digit: North America, parts of
//     Latin America and the Caribbean) takes 3;
//   - an MCC that lists both lengths (mccMixed) takes 3 when the 3-digit prefix is one of its
//     listed 3-digit MNCs and the 2-digit prefix is not one of its 2-digit MNCs, and 2
//     otherwise, except 310 (USA) whose 3-digit MNCs are the rule;
//   - any other MCC takes 2 (Europe, France 208 included, use 2-digit MNCs).
//
// The split is a best effort for networks the list does not know; the MCC is always exact.
func SplitPLMN(imsi string) (mcc, mnc string) {
	if len(imsi) < 6 {
		return "", ""
	}
	mcc = imsi[:3]
	if _, ok := mcc3Digit[mcc]; ok {
		return mcc, imsi[3:6]
	}
	if m, ok := mccMixed[mcc]; ok {
		two, three := imsi[3:5], imsi[3:6]
		_, has3 := m.three[three]
		_, has2 := m.two[two]
		switch {
		case has3 && !has2:
			return mcc, three
		case has2:
			return mcc, two
		case m.default3:
			return mcc, three
		}
	}
	return mcc, imsi[3:5]
}
