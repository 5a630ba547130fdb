package pseudonym

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vigie/vigie/pkg/config"
	"gopkg.in/yaml.v3"
)

// Environment variables read by FromEnv.
const (
	// EnvKeys holds comma-separated "version:hexsecret" pairs, e.g. "k1:ab12…,k2:cd34…".
	EnvKeys = "VIGIE_PSEUDONYM_KEYS"
	// EnvActive names the version used for writing; default: the last pair of EnvKeys.
	EnvActive = "VIGIE_PSEUDONYM_ACTIVE"
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// Keyring holds every loaded key version and which one is active for writing.
type Keyring struct {
	active string
	byVer  map[string]*Pseudonymizer
}

// KeyFile is the YAML layout of a key file:
//
//	active: k2
//	default_country_code: "33"
//	keys:
//	  k1: 5f0c…   # hex, at least 32 bytes (64 hex digits); `openssl rand -hex 32`
//	  k2: 9a41…
type KeyFile struct {
	Active             string            `yaml:"active"`
	DefaultCountryCode string            `yaml:"default_country_code"`
	Keys               map[string]string `yaml:"keys"`
}

// NewKeyring builds a keyring from secrets by version. defaultCC is the country code
// (digits, e.g. "33", or empty) used to normalise national dialled numbers.
func NewKeyring(active string, secrets map[string][]byte, defaultCC string) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, errors.New("pseudonym keys: no key loaded")
	}
	for _, c := range defaultCC {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("pseudonym keys: default country code %q must be digits", defaultCC)
		}
	}
	if len(defaultCC) > 3 {
		return nil, fmt.Errorf("pseudonym keys: default country code %q has more than 3 digits", defaultCC)
	}
	k := &Keyring{active: active, byVer: make(map[string]*Pseudonymizer, len(secrets))}
	for v, s := range secrets {
		if !versionRE.MatchString(v) {
			return nil, fmt.Errorf("pseudonym keys: version %q must match %s", v, versionRE)
		}
		if len(s) < MinKeyBytes {
			return nil, fmt.Errorf("pseudonym keys: key %q has %d bytes, at least %d needed", v, len(s), MinKeyBytes)
		}
		k.byVer[v] = newPseudonymizer(v, s, defaultCC)
	}
	if _, ok := k.byVer[active]; !ok {
		return nil, fmt.Errorf("pseudonym keys: active version %q is not among the loaded keys %v", active, k.Versions())
	}
	return k, nil
}

// LoadFile reads a YAML key file (see KeyFile). A file that group or others may read (mode
// beyond 0600), or that is not a regular file, is refused: the keys are what stands between
// a pseudonym and the IMEI behind it.
func LoadFile(path string) (*Keyring, error) {
	data, err := config.ReadSecret(path)
	if err != nil {
		return nil, fmt.Errorf("pseudonym key file: %w", err)
	}
	var f KeyFile
	if err := yaml.Unmarshal([]byte(data), &f); err != nil {
		return nil, fmt.Errorf("parse pseudonym key file %s: %w", path, err)
	}
	secrets := make(map[string][]byte, len(f.Keys))
	for v, h := range f.Keys {
		s, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil {
			return nil, fmt.Errorf("pseudonym key file %s: key %q is not hex", path, v)
		}
		secrets[v] = s
	}
	return NewKeyring(f.Active, secrets, f.DefaultCountryCode)
}

// FromEnv reads keys from EnvKeys and EnvActive through getenv (os.Getenv in production).
func FromEnv(getenv func(string) string, defaultCC string) (*Keyring, error) {
	raw := strings.TrimSpace(getenv(EnvKeys))
	if raw == "" {
		return nil, fmt.Errorf("pseudonym keys: %s is empty", EnvKeys)
	}
	secrets := map[string][]byte{}
	last := ""
	for _, pair := range strings.Split(raw, ",") {
		v, h, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			return nil, fmt.Errorf("pseudonym keys: %s entries must be version:hexsecret", EnvKeys)
		}
		s, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("pseudonym keys: %s key %q is not hex", EnvKeys, v)
		}
		secrets[v] = s
		last = v
	}
	active := getenv(EnvActive)
	if active == "" {
		active = last
	}
	return NewKeyring(active, secrets, defaultCC)
}

// Active returns the Pseudonymizer of the active key version, the one to write with.
func (k *Keyring) Active() *Pseudonymizer { return k.byVer[k.active] }

// Version returns the Pseudonymizer of a loaded key version, to recompute pseudonyms of an
// older version during a rotation.
func (k *Keyring) Version(v string) (*Pseudonymizer, bool) {
	p, ok := k.byVer[v]
	return p, ok
}

// Versions lists the loaded key versions, sorted.
func (k *Keyring) Versions() []string {
	out := make([]string, 0, len(k.byVer))
	for v := range k.byVer {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
